//! The parameter sets a TS stream's video has sent, by id. All of H.264's go into the avcC that
//! FLV, RTMP and the fMP4 writer carry, so a stream that refers to several (as broadcast
//! encoders of interlaced video do with two PPS) decodes there. H.265's are kept one of each
//! (id 0): its hvcC is built from one VPS, SPS and PPS.

use crate::read::BitReader;

/// Most sets kept of each kind: H.264 allows 32 SPS and 256 PPS ids, encoders use a few, and
/// an avcC counts its SPS in 5 bits.
const MOST: usize = 31;

/// Sets by id, in the order of their ids.
#[derive(Debug, Default)]
pub(super) struct Sets(Vec<(u32, Vec<u8>)>);

impl Sets {
    /// The set of the lowest id.
    pub fn first(&self) -> Option<&Vec<u8>> {
        self.0.first().map(|(_, unit)| unit)
    }

    /// Every set, by id.
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|(_, unit)| unit.as_slice())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps `unit` as the set `id`, in place of one of that id. Not kept: one too long for a
    /// decoder configuration record (over 65,535 bytes), or a new id when [`MOST`] are kept.
    pub fn keep(&mut self, id: u32, unit: &[u8]) {
        if u16::try_from(unit.len()).is_err() {
            return;
        }
        match self.0.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => unit.clone_into(&mut self.0[at].1),
            Err(at) if self.0.len() < MOST => self.0.insert(at, (id, unit.to_vec())),
            Err(_) => {}
        }
    }
}

/// The id an H.264 SPS or PPS NAL unit declares (`seq_parameter_set_id` after the profile,
/// constraint and level bytes; `pic_parameter_set_id` first), when it reads as one. Emulation
/// prevention bytes can only follow two zero bytes, which no id below 2¹⁵ begins with.
pub(super) fn avc_id(unit: &[u8]) -> Option<u32> {
    let (after, most) = match unit.first()? & 0x1f {
        7 => (4, 31),
        8 => (1, 255),
        _ => return None,
    };
    BitReader::new(unit.get(after..)?)
        .ue()
        .ok()
        .filter(|id| *id <= most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_sps_and_pps_and_bounded() {
        // SPS: header, profile 100, constraints, level 31, then ue(0) = 1 and ue(1) = 010.
        assert_eq!(avc_id(&[0x67, 100, 0, 31, 0b1000_0000]), Some(0));
        assert_eq!(avc_id(&[0x67, 100, 0, 31, 0b0100_0000]), Some(1));
        // PPS: ue(2) = 011, then ue(0).
        assert_eq!(avc_id(&[0x68, 0b0111_0000]), Some(2));
        // ue(32) = 00000100001: not an SPS id; cut short; not a parameter set.
        assert_eq!(avc_id(&[0x67, 100, 0, 31, 0b0000_0100, 0b0010_0000]), None);
        assert_eq!(avc_id(&[0x67, 100, 0]), None);
        assert_eq!(avc_id(&[0x65, 0x80]), None);
    }

    #[test]
    fn a_set_replaces_one_of_its_id_and_sets_stay_in_id_order_and_bounded() {
        let mut sets = Sets::default();
        sets.keep(1, b"one");
        sets.keep(0, b"zero");
        sets.keep(1, b"uno");
        assert_eq!(sets.all().collect::<Vec<_>>(), [&b"zero"[..], b"uno"]);
        for id in 2..100 {
            sets.keep(id, b"more");
        }
        assert_eq!(sets.len(), MOST);
        sets.keep(1, &vec![0; 70_000]);
        assert_eq!(sets.all().nth(1), Some(&b"uno"[..]));
    }

    #[test]
    fn every_pps_a_stream_sends_is_in_its_decoder_configuration() {
        let mut conv = crate::flv::FromTs::default();
        let sps = [0x67, 100, 0, 31, 0b1000_0000];
        let (pps0, pps1) = ([0x68, 0b1100_1110], [0x68, 0b0100_1110]);
        let mut frame = Vec::new();
        for unit in [&sps[..], &pps0, &pps1, &pps0, &[0x65, 0x88, 0x80]] {
            frame.extend_from_slice(&[0, 0, 0, 1]);
            frame.extend_from_slice(unit);
        }
        let mut tags = Vec::new();
        conv.video_frame(&frame, 0, 0, &mut tags);
        assert_eq!(tags.len(), 2, "the configuration, then the frame");
        let mut record = crate::read::Reader::new(&tags[0].body[5..], 0, "avcC");
        let (_, sets) = crate::mp4::remux::avcc(&mut record).unwrap();
        assert_eq!(sets, [sps.to_vec(), pps0.to_vec(), pps1.to_vec()]);
        assert!(tags[1].keyframe);
        // The same sets again with the next keyframe: no second configuration.
        conv.video_frame(&frame, 40, 0, &mut tags);
        assert_eq!(tags.iter().filter(|t| t.sequence).count(), 1);
    }
}

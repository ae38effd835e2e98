//! Which publish of a live stream a segment URL names: its files are under a directory of the
//! stream's instance, so that one URL never names two broadcasts' bytes.

use crate::error::Error;
use crate::live;

/// Where one publish of a live stream keeps its segments, parts and init segments:
/// `/live/{name}/{tag}/`, `tag` the stream's instance in hex ([`live::Stream::dir`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance<'a> {
    pub name: &'a str,
    pub tag: &'a str,
}

impl Instance<'_> {
    /// Its stream, when `tag` names the stream's current instance: an earlier publish under
    /// the same name (whose files caches may hold as immutable) is not this one.
    pub(crate) fn stream(&self, live: &live::Live) -> Result<std::sync::Arc<live::Stream>, Error> {
        let s = live
            .get(self.name)
            .ok_or_else(|| Error::UnknownStream(self.name.into()))?;
        match s.is_instance(self.tag) {
            true => Ok(s),
            false => Err(Error::OtherInstance {
                stream: self.name.into(),
                tag: self.tag.into(),
            }),
        }
    }
}

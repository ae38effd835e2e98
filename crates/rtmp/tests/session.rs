//! The server command flow: what each request is answered with, pipelined commands, media,
//! acknowledgements, and commands that lack what they need.

mod common;

use common::{chunk0, command, connect, n, publish_commands, s, Server};
use rtmp::amf0::{self, Value};
use rtmp::{Error, Event};

#[test]
fn a_command_with_fewer_than_three_values_is_an_error_not_a_panic() {
    let mut srv = Server::new();
    let r = srv.feed(&command(0, &[s("connect"), n(1.0)]));
    assert_eq!(
        r,
        Err(Error::Command {
            name: "connect".into(),
            why: "no command object"
        })
    );
    for values in [vec![], vec![s("connect")], vec![n(1.0)]] {
        let r = Server::new().feed(&command(0, &values));
        assert!(matches!(r, Err(Error::Command { .. })), "{values:?}: {r:?}");
    }
    // After connect: a publish without its name is an error; a bare createStream is answered.
    let mut srv = Server::new();
    srv.feed(&connect("live")).unwrap();
    srv.feed(&command(0, &[s("createStream"), n(2.0)])).unwrap();
    assert!(srv.feed(&command(1, &[s("publish"), n(3.0)])).is_err());
}

#[test]
fn connect_is_answered_with_window_bandwidth_chunk_size_then_success() {
    let mut srv = Server::new();
    srv.feed(&connect("live")).unwrap();
    let types: Vec<u8> = srv.sent.iter().map(|m| m.type_id).collect();
    assert_eq!(types, [5, 6, 1, 20]);
    assert_eq!(srv.sent[2].payload.as_ref(), 4096u32.to_be_bytes());
    let (_, result) = &srv.commands()[0];
    assert_eq!(result[0], s("_result"));
    assert_eq!(result[1], n(1.0));
    assert_eq!(srv.codes(), ["NetConnection.Connect.Success"]);
    assert!(matches!(&srv.events[0], Event::Connect { app, .. } if app == "live"));
}

#[test]
fn a_refused_connect_is_answered_with_an_error_and_the_code() {
    let mut srv = Server::new();
    srv.input.extend_from_slice(&connect("other"));
    let Some(Event::Connect { request, app }) = srv.session.poll(&mut srv.input).unwrap() else {
        panic!("no connect event");
    };
    assert_eq!(app, "other");
    srv.session
        .refuse(request, "NetConnection.Connect.Rejected", "unknown app");
    srv.feed(&[]).unwrap();
    let (_, v) = &srv.commands()[0];
    assert_eq!(v[0], s("_error"));
    assert_eq!(v[3].get("level"), Some(&s("error")));
    assert_eq!(v[3].get("description"), Some(&s("unknown app")));
    assert_eq!(srv.codes(), ["NetConnection.Connect.Rejected"]);
}

#[test]
fn pipelined_publish_commands_are_answered_in_order() {
    let mut srv = Server::new();
    srv.feed(&publish_commands("show?key=k")).unwrap();
    assert!(
        matches!(&srv.events[1], Event::Publish { name, request } if name == "show?key=k" && request.stream_id() == 1)
    );
    let names: Vec<Value> = srv.commands().iter().map(|(_, v)| v[0].clone()).collect();
    assert_eq!(names, [s("_result"), s("_result"), s("onStatus")]);
    assert_eq!(srv.commands()[1].1[3], n(1.0), "createStream's stream id");
    assert_eq!(srv.commands()[2].0, 1, "onStatus on the stream");
    assert_eq!(
        srv.codes(),
        ["NetConnection.Connect.Success", "NetStream.Publish.Start"]
    );
}

#[test]
fn a_refused_publish_gets_an_error_status_with_the_callers_code() {
    let mut srv = Server::new();
    srv.refuse_publish = Some("NetStream.Publish.BadName");
    srv.feed(&publish_commands("busy")).unwrap();
    let (stream, v) = srv.commands().pop().unwrap();
    assert_eq!((stream, &v[0]), (1, &s("onStatus")));
    assert_eq!(v[3].get("level"), Some(&s("error")));
    assert_eq!(v[3].get("code"), Some(&s("NetStream.Publish.BadName")));
    // Media after a refusal raises nothing.
    srv.feed(&chunk0(6, 0, 9, 1, 2, &[0x17, 0])).unwrap();
    assert!(srv.media().is_empty());
}

#[test]
fn play_is_answered_with_stream_begin_reset_and_start_and_nothing_else() {
    let mut srv = Server::new();
    let mut b = connect("live");
    b.extend(command(0, &[s("createStream"), n(2.0), Value::Null]));
    b.extend(command(
        0,
        &[s("getStreamLength"), n(3.0), Value::Null, s("show")],
    ));
    b.extend(command(
        1,
        &[s("play"), n(4.0), Value::Null, s("show"), n(-1000.0)],
    ));
    srv.feed(&b).unwrap();
    assert!(matches!(&srv.events[1], Event::Play { name, .. } if name == "show"));
    let after_connect: Vec<u8> = srv.sent[4..].iter().map(|m| m.type_id).collect();
    assert_eq!(
        after_connect,
        [20, 4, 20, 20],
        "createStream's _result, StreamBegin, 2 onStatus"
    );
    assert_eq!(
        srv.sent[5].payload.as_ref(),
        [0, 0, 0, 0, 0, 1],
        "StreamBegin 1"
    );
    assert_eq!(
        srv.codes(),
        [
            "NetConnection.Connect.Success",
            "NetStream.Play.Reset",
            "NetStream.Play.Start"
        ]
    );
    assert!(
        srv.sent.iter().all(|m| m.type_id != 18 && m.type_id != 15),
        "no data messages"
    );
}

#[test]
fn media_of_the_published_stream_comes_out_with_absolute_timestamps() {
    let mut srv = Server::new();
    let mut b = publish_commands("show");
    b.extend(chunk0(4, 0, 18, 1, 3, &[2, 0, 0])); // a data message: ignored
    b.extend(chunk0(6, 1000, 9, 1, 3, &[0x17, 0, 0]));
    b.extend_from_slice(&[0x86, 0, 0, 40, 0x27, 1, 0]); // type 2: +40
    b.extend(chunk0(4, 1010, 8, 1, 2, &[0xaf, 1]));
    b.extend(chunk0(7, 5, 9, 2, 2, &[0x17, 1])); // another stream: ignored
    srv.feed(&b).unwrap();
    let media: Vec<(bool, u32, Vec<u8>)> = srv
        .media()
        .into_iter()
        .map(|(v, t, p)| (v, t, p.to_vec()))
        .collect();
    assert_eq!(
        media,
        [
            (true, 1000, vec![0x17, 0, 0]),
            (true, 1040, vec![0x27, 1, 0]),
            (false, 1010, vec![0xaf, 1])
        ]
    );
}

#[test]
fn delete_stream_finishes_the_publish() {
    let mut srv = Server::new();
    srv.feed(&publish_commands("show")).unwrap();
    srv.feed(&command(
        0,
        &[s("FCUnpublish"), n(6.0), Value::Null, s("show")],
    ))
    .unwrap();
    srv.feed(&command(
        0,
        &[s("deleteStream"), n(7.0), Value::Null, n(1.0)],
    ))
    .unwrap();
    assert_eq!(
        srv.events.last(),
        Some(&Event::PublishFinished { stream_id: 1 })
    );
    // Media after it raises nothing.
    srv.feed(&chunk0(6, 0, 9, 1, 2, &[0x17, 0])).unwrap();
    assert!(srv.media().is_empty());
}

/// A client that says `FCUnpublish` and closes the connection without `deleteStream`: its
/// publish ends cleanly there (viewers are not kept waiting for it to come back).
#[test]
fn fc_unpublish_alone_finishes_the_publish() {
    let mut srv = Server::new();
    srv.feed(&publish_commands("show")).unwrap();
    srv.feed(&command(
        0,
        &[s("FCUnpublish"), n(6.0), Value::Null, s("show")],
    ))
    .unwrap();
    assert_eq!(
        srv.events.last(),
        Some(&Event::PublishFinished { stream_id: 1 })
    );
}

#[test]
fn amf3_commands_are_read_after_their_leading_byte() {
    let mut srv = Server::new();
    let amf0 = connect("live");
    // The same message as type 17 with a leading zero byte (one chunk of 128 at most).
    let body = &amf0[12..];
    let mut b = vec![0u8];
    b.extend_from_slice(body);
    srv.feed(&chunk0(3, 0, 17, 0, b.len(), &b)).unwrap();
    assert!(matches!(&srv.events[0], Event::Connect { app, .. } if app == "live"));
}

#[test]
fn acknowledgements_follow_the_peers_window() {
    let mut srv = Server::new();
    let mut b = chunk0(2, 0, 5, 0, 4, &1000u32.to_be_bytes());
    b.extend(publish_commands("show"));
    srv.feed(&b).unwrap();
    let acks_before = srv.sent.iter().filter(|m| m.type_id == 3).count();
    for i in 0..100 {
        srv.feed(&chunk0(6, i * 40, 9, 1, 100, &[0x27; 100]))
            .unwrap();
    }
    let acks: Vec<u32> = srv
        .sent
        .iter()
        .filter(|m| m.type_id == 3)
        .map(|m| u32::from_be_bytes(m.payload[..4].try_into().unwrap()))
        .collect();
    assert!(acks.len() > acks_before, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000), "{acks:?}");
}

#[test]
fn a_tiny_acknowledgement_window_is_raised_so_answers_never_outweigh_input() {
    let mut srv = Server::new();
    let mut b = chunk0(2, 0, 5, 0, 4, &1u32.to_be_bytes());
    b.extend(publish_commands("show"));
    srv.feed(&b).unwrap();
    let before = srv.sent_len();
    // 10,000 one-byte messages: each a 1-byte type-3 header after a 12-byte type-0 one.
    let mut flood = chunk0(7, 0, 8, 0, 0, &[]);
    flood.extend_from_slice(&[0xc7u8; 10_000]);
    srv.feed(&flood).unwrap();
    let answered = srv.sent_len() - before;
    assert!(
        answered * 100 <= flood.len(),
        "{answered} bytes answered to {}",
        flood.len()
    );
}

#[test]
fn pings_are_answered_at_most_once_per_4_kib_received() {
    let mut srv = Server::new();
    let mut flood = chunk0(2, 0, 4, 0, 6, &[0, 6, 1, 2, 3, 4]);
    for _ in 0..1000 {
        flood.extend_from_slice(&[0xc2, 0, 6, 1, 2, 3, 4]);
    }
    srv.feed(&flood).unwrap();
    let pongs = srv.sent.iter().filter(|m| m.type_id == 4).count();
    assert!(
        (1..=2).contains(&pongs),
        "{pongs} pongs to 1,001 pings in 7 KB"
    );
}

#[test]
fn a_command_over_64_kib_is_refused_before_it_is_decoded() {
    let mut srv = Server::new();
    srv.feed(&publish_commands("show")).unwrap();
    // 100 KB of AMF0 nulls: decoded, 100,000 values.
    let mut body = amf0::encode_all(&[s("onFI")]);
    body.extend_from_slice(&[0x05u8; 100_000]);
    let mut msg = Vec::new();
    rtmp::write::message(&mut msg, 3, 20, 1, 0, &body, 128);
    let r = srv.feed(&msg);
    assert!(matches!(r, Err(Error::Command { .. })), "{r:?}");
}

#[test]
fn a_ping_request_is_answered() {
    let mut srv = Server::new();
    srv.feed(&chunk0(2, 0, 4, 0, 6, &[0, 6, 1, 2, 3, 4]))
        .unwrap();
    assert_eq!(srv.sent[0].type_id, 4);
    assert_eq!(srv.sent[0].payload.as_ref(), [0, 7, 1, 2, 3, 4]);
}

#[test]
fn commands_before_connect_are_errors() {
    let r = Server::new().feed(&command(0, &[s("createStream"), n(2.0), Value::Null]));
    assert!(matches!(r, Err(Error::Command { .. })), "{r:?}");
}

#[test]
fn drive_runs_a_valid_session_to_its_events() {
    let mut data = vec![0u8];
    data.extend(publish_commands("even"));
    data.extend(chunk0(6, 0, 9, 1, 3, &[0x17, 0, 0]));
    assert_eq!(rtmp::drive(&data), 3, "connect, publish, one video message");
    let mut with_handshake = vec![1u8, 3];
    with_handshake.extend_from_slice(&[0; 2 * 1536]);
    with_handshake.extend_from_slice(&data[1..]);
    assert_eq!(rtmp::drive(&with_handshake), 3);
}

#[test]
fn drive_never_panics_on_random_bytes() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut valid = vec![0u8];
    valid.extend(publish_commands("even"));
    valid.extend(chunk0(6, 0xff_ffff, 9, 1, 300, &[0x17; 128]));
    for _ in 0..3_000 {
        let mut b = if rng.bool() {
            valid.clone()
        } else {
            let mut b = vec![rng.u8(..) & !1];
            b.extend((0..rng.usize(0..1500)).map(|_| rng.u8(..)));
            b
        };
        for _ in 0..rng.usize(0..6) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        rtmp::drive(&b);
    }
}

#[test]
fn publish_on_a_stream_createstream_did_not_make_is_an_error() {
    let mut srv = Server::new();
    let mut b = connect("live");
    b.extend(command(
        1,
        &[s("publish"), n(5.0), Value::Null, s("show"), s("live")],
    ));
    let r = srv.feed(&b);
    assert!(matches!(r, Err(Error::Command { .. })), "{r:?}");
    assert!(srv
        .events
        .iter()
        .all(|e| !matches!(e, Event::Publish { .. })));
}

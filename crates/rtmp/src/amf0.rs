//! AMF0, the value encoding of RTMP commands and data messages: a decoder that is total (any byte
//! string gives `Ok` or `Err`, never a panic; nothing is allocated for a declared count beyond
//! the bytes present; nesting is limited to [`MAX_DEPTH`]) and an encoder.
//!
//! ```text
//! number 0x00 f64 | boolean 0x01 u8 | string 0x02 u16 len, UTF-8 | object 0x03 (u16 key, value)*
//! 0x0000 0x09 | null 0x05 | undefined 0x06 | reference 0x07 (refused) | ECMA array 0x08 u32 count,
//! then as object | strict array 0x0A u32 count, values | date 0x0B f64 ms, i16 zone
//! | long string 0x0C u32 len, UTF-8
//! ```
//! Strings that are not UTF-8 are decoded lossily (RTMP names are ASCII in practice).

use crate::Error;

/// Objects and arrays nested deeper than this are refused.
pub const MAX_DEPTH: usize = 32;

/// One AMF0 value. Object and ECMA array properties keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    Date { ms: f64, zone: i16 },
    LongString(String),
}

impl Value {
    /// The text of a string or long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// Decodes every value in `data`, to its end.
pub fn decode_all(mut data: &[u8]) -> Result<Vec<Value>, Error> {
    let mut values = Vec::new();
    while !data.is_empty() {
        values.push(decode(&mut data)?);
    }
    Ok(values)
}

/// Decodes at most the first `n` values of `data` (the rest is not looked at).
pub fn decode_first(mut data: &[u8], n: usize) -> Result<Vec<Value>, Error> {
    let mut values = Vec::new();
    while !data.is_empty() && values.len() < n {
        values.push(decode(&mut data)?);
    }
    Ok(values)
}

/// Decodes one value from the front of `data` and advances past it.
pub fn decode(data: &mut &[u8]) -> Result<Value, Error> {
    value(data, 0)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    let (head, rest) = data.split_at_checked(n).ok_or(Error::Amf0Truncated)?;
    *data = rest;
    Ok(head)
}

fn array<const N: usize>(data: &mut &[u8]) -> Result<[u8; N], Error> {
    let mut a = [0u8; N];
    a.copy_from_slice(take(data, N)?);
    Ok(a)
}

fn text(data: &mut &[u8], n: usize) -> Result<String, Error> {
    Ok(String::from_utf8_lossy(take(data, n)?).into_owned())
}

fn short_string(data: &mut &[u8]) -> Result<String, Error> {
    let n = u16::from_be_bytes(array(data)?);
    text(data, usize::from(n))
}

fn value(data: &mut &[u8], depth: usize) -> Result<Value, Error> {
    let [marker] = array(data)?;
    Ok(match marker {
        NUMBER => Value::Number(f64::from_be_bytes(array(data)?)),
        BOOLEAN => Value::Boolean(array::<1>(data)?[0] != 0),
        STRING => Value::String(short_string(data)?),
        OBJECT => Value::Object(properties(data, depth)?),
        NULL => Value::Null,
        UNDEFINED => Value::Undefined,
        ECMA_ARRAY => {
            // The count is a hint only; the properties end with the object end marker.
            array::<4>(data)?;
            Value::EcmaArray(properties(data, depth)?)
        }
        STRICT_ARRAY => {
            let count = u32::from_be_bytes(array(data)?);
            let depth = nested(depth)?;
            // Every value takes at least one byte: the loop is bounded by the bytes present.
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(value(data, depth)?);
            }
            Value::StrictArray(items)
        }
        DATE => Value::Date {
            ms: f64::from_be_bytes(array(data)?),
            zone: i16::from_be_bytes(array(data)?),
        },
        LONG_STRING => {
            let n = u32::from_be_bytes(array(data)?);
            let n = usize::try_from(n).map_err(|_| Error::Amf0Truncated)?;
            Value::LongString(text(data, n)?)
        }
        REFERENCE => return Err(Error::Amf0Unsupported(marker)),
        other => return Err(Error::Amf0Unsupported(other)),
    })
}

fn nested(depth: usize) -> Result<usize, Error> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return Err(Error::Amf0TooDeep);
    }
    Ok(depth)
}

/// Key/value pairs up to the empty key and the object end marker.
fn properties(data: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, Error> {
    let depth = nested(depth)?;
    let mut props = Vec::new();
    loop {
        let key = short_string(data)?;
        if key.is_empty() && data.first() == Some(&OBJECT_END) {
            *data = data.get(1..).unwrap_or_default();
            return Ok(props);
        }
        props.push((key, value(data, depth)?));
    }
}

/// Appends the encoding of `v` to `out`. A string over 65535 bytes is written as a long string.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(n) => {
                out.push(STRING);
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Err(_) => long_string(s, out),
        },
        Value::Object(props) => {
            out.push(OBJECT);
            encode_properties(props, out);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(props) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(props.len() as u32).to_be_bytes());
            encode_properties(props, out);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Value::Date { ms, zone } => {
            out.push(DATE);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&zone.to_be_bytes());
        }
        Value::LongString(s) => long_string(s, out),
    }
}

fn long_string(s: &str, out: &mut Vec<u8>) {
    out.push(LONG_STRING);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Keys longer than 65535 bytes are cut there.
fn encode_properties(props: &[(String, Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        let key = k.as_bytes();
        let key = key.get(..usize::from(u16::MAX)).unwrap_or(key);
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// The encoding of several values, one after the other.
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    fn sample() -> Vec<Value> {
        vec![
            s("connect"),
            Value::Number(1.0),
            Value::Object(vec![
                ("app".into(), s("live")),
                ("flashVer".into(), s("FMLE/3.0")),
                ("audio".into(), Value::Boolean(true)),
                (
                    "nested".into(),
                    Value::Object(vec![("n".into(), Value::Null)]),
                ),
            ]),
            Value::Null,
            Value::Undefined,
            Value::EcmaArray(vec![("duration".into(), Value::Number(0.0))]),
            Value::StrictArray(vec![Value::Number(2.5), s("x")]),
            Value::Date {
                ms: 1.7e12,
                zone: -60,
            },
            Value::LongString("long".into()),
            s(""),
        ]
    }

    #[test]
    fn every_value_type_round_trips() {
        let values = sample();
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn a_string_over_64_kib_is_written_as_a_long_string() {
        let big = "a".repeat(70_000);
        let bytes = encode_all(&[s(&big)]);
        assert_eq!(bytes[0], LONG_STRING);
        assert_eq!(decode_all(&bytes).unwrap(), [Value::LongString(big)]);
    }

    #[test]
    fn every_truncation_of_valid_input_is_an_error() {
        let bytes = encode_all(&sample());
        // Cut inside the first value (a string): nothing complete to return.
        for cut in 1..bytes.len() {
            let r = decode_all(&bytes[..cut]);
            // A cut that falls on a value boundary decodes the values before it.
            if let Ok(values) = r {
                assert!(values.len() < sample().len(), "cut at {cut}");
                assert_eq!(values[..], sample()[..values.len()], "cut at {cut}");
            }
        }
        assert_eq!(decode_all(&[STRING, 0, 5, b'a']), Err(Error::Amf0Truncated));
        assert_eq!(
            decode_all(&[LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(Error::Amf0Truncated)
        );
    }

    #[test]
    fn a_huge_declared_array_count_allocates_nothing_for_it() {
        let bytes = [STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL, NULL];
        assert_eq!(decode_all(&bytes), Err(Error::Amf0Truncated));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let mut ok = Value::Null;
        for _ in 0..MAX_DEPTH {
            ok = Value::StrictArray(vec![ok]);
        }
        assert!(decode_all(&encode_all(&[ok.clone()])).is_ok());
        let too_deep = Value::Object(vec![("k".into(), ok)]);
        assert_eq!(
            decode_all(&encode_all(&[too_deep])),
            Err(Error::Amf0TooDeep)
        );
        // A deep opening without an end is refused by depth, not by stack.
        let bytes = [STRICT_ARRAY, 0, 0, 0, 1].repeat(100_000);
        assert_eq!(decode_all(&bytes), Err(Error::Amf0TooDeep));
    }

    #[test]
    fn references_and_unknown_markers_are_refused() {
        assert_eq!(
            decode_all(&[REFERENCE, 0, 1]),
            Err(Error::Amf0Unsupported(REFERENCE))
        );
        assert_eq!(decode_all(&[0x11]), Err(Error::Amf0Unsupported(0x11)));
        assert_eq!(
            decode_all(&[OBJECT_END]),
            Err(Error::Amf0Unsupported(OBJECT_END))
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        let valid = encode_all(&sample());
        for _ in 0..20_000 {
            let mut b: Vec<u8> = if rng.bool() {
                valid.clone()
            } else {
                (0..rng.usize(0..64)).map(|_| rng.u8(..12)).collect()
            };
            for _ in 0..rng.usize(0..4) {
                if !b.is_empty() {
                    let i = rng.usize(..b.len());
                    b[i] = rng.u8(..);
                }
            }
            let _ = decode_all(&b);
        }
    }
}

//! A RESP2/RESP3 reply parser for tests, keeping every distinction the
//! wire makes (array vs push vs set, null bulk vs RESP3 null), and a
//! canonical form for comparing streams where Redis leaves an order open.

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

/// One reply frame, as it came.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Frame {
    /// `+...`
    Simple(Vec<u8>),
    /// `-...`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$n` (None for `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `=n` (the text after `txt:`)
    Verbatim(Vec<u8>),
    /// `_`
    Null,
    /// `*n`, `>n`, `~n` with the type byte (None for `*-1`)
    Aggregate(u8, Option<Vec<Frame>>),
    /// `%n`
    Map(Vec<(Frame, Frame)>),
}

impl Frame {
    /// The frame's elements if it is an array or push.
    pub(crate) fn items(&self) -> Option<&[Frame]> {
        match self {
            Frame::Aggregate(_, Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The bulk string's bytes.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(Some(b)) | Frame::Simple(b) | Frame::Verbatim(b) => Some(b),
            _ => None,
        }
    }

    /// A pub/sub frame's kind (`message`, `unsubscribe`, ...), if it is one.
    pub(crate) fn pubsub_kind(&self) -> Option<&[u8]> {
        let items = self.items()?;
        let kind = items.first()?.bytes()?;
        const KINDS: [&[u8]; 9] = [
            b"message",
            b"pmessage",
            b"smessage",
            b"subscribe",
            b"psubscribe",
            b"ssubscribe",
            b"unsubscribe",
            b"punsubscribe",
            b"sunsubscribe",
        ];
        KINDS.contains(&kind).then_some(kind)
    }
}

/// Parses one frame at `input[*pos..]`; `None` if incomplete or invalid.
fn parse_one(input: &[u8], pos: &mut usize) -> Option<Frame> {
    let line_end = input[*pos..].windows(2).position(|w| w == b"\r\n")? + *pos;
    let kind = input[*pos];
    let line = &input[*pos + 1..line_end];
    *pos = line_end + 2;
    let number = || std::str::from_utf8(line).ok()?.parse::<i64>().ok();
    Some(match kind {
        b'+' => Frame::Simple(line.to_vec()),
        b'-' => Frame::Error(line.to_vec()),
        b':' => Frame::Integer(number()?),
        b'_' => Frame::Null,
        b'$' | b'=' => {
            let n = number()?;
            if n < 0 {
                Frame::Bulk(None)
            } else {
                let n = n as usize;
                if input.len() < *pos + n + 2 {
                    return None;
                }
                let data = input[*pos..*pos + n].to_vec();
                *pos += n + 2;
                if kind == b'=' {
                    Frame::Verbatim(data.get(4..).unwrap_or_default().to_vec())
                } else {
                    Frame::Bulk(Some(data))
                }
            }
        }
        b'*' | b'>' | b'~' => {
            let n = number()?;
            if n < 0 {
                Frame::Aggregate(kind, None)
            } else {
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(parse_one(input, pos)?);
                }
                Frame::Aggregate(kind, Some(items))
            }
        }
        b'%' => {
            let n = number()?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                let k = parse_one(input, pos)?;
                let v = parse_one(input, pos)?;
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        _ => return None,
    })
}

/// Parses a whole reply stream.
///
/// # Panics
///
/// If the stream does not parse completely.
pub(crate) fn parse_all(input: &[u8]) -> Vec<Frame> {
    let mut pos = 0;
    let mut frames = Vec::new();
    while pos < input.len() {
        match parse_one(input, &mut pos) {
            Some(frame) => frames.push(frame),
            None => panic!(
                "unparseable reply stream at {pos}: {:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
    frames
}

/// The stream with the orders Redis leaves open made canonical:
///
/// * a run of consecutive `pmessage` frames (one publish matching several
///   patterns; Redis delivers them in hash order) is sorted;
/// * a run of consecutive `unsubscribe` or `sunsubscribe` confirmations
///   (a no-argument unsubscribe; hash order) has its names sorted while
///   the counts keep their order;
/// * the elements of an array reply of bulk strings that is not a pub/sub
///   frame (`PUBSUB CHANNELS`) are sorted.
pub(crate) fn canonical(frames: &[Frame]) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let kind = frames[i].pubsub_kind().map(<[u8]>::to_vec);
        match kind.as_deref() {
            Some(k @ (b"pmessage" | b"unsubscribe" | b"sunsubscribe")) => {
                let mut j = i;
                while j < frames.len() && frames[j].pubsub_kind() == Some(k) {
                    j += 1;
                }
                let mut run: Vec<Frame> = frames[i..j].to_vec();
                if k == b"pmessage" {
                    run.sort();
                } else {
                    let mut names: Vec<Frame> = run
                        .iter()
                        .map(|f| f.items().unwrap_or_default()[1].clone())
                        .collect();
                    names.sort();
                    for (frame, name) in run.iter_mut().zip(names) {
                        if let Frame::Aggregate(_, Some(items)) = frame {
                            items[1] = name;
                        }
                    }
                }
                out.extend(run);
                i = j;
            }
            Some(_) => {
                out.push(frames[i].clone());
                i += 1;
            }
            None => {
                let mut frame = frames[i].clone();
                if let Frame::Aggregate(b'*', Some(items)) = &mut frame {
                    if items.iter().all(|f| matches!(f, Frame::Bulk(Some(_)))) {
                        items.sort();
                    }
                }
                out.push(frame);
                i += 1;
            }
        }
    }
    out
}

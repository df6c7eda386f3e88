//! What the nodes of a `reg_cluster` tell each other over DMQ (peer "uac").
//!
//! A body is text: a first line `uac-reg/1 <kind> <sender> [<contact-addr>]` (`sync`
//! and `done` carry the sender's `reg_contact_addr`, so that nodes registering
//! different Contacts are told), then, for `state`, one line per account:
//!
//! - `b <l_uuid> <call-id> <from-tag> <cseq> <expires-in> <refresh-in> [<contact-addr>]`:
//!   the sender's registrar granted this binding; it expires in `expires-in` seconds,
//!   the sender planned to refresh it in `refresh-in` seconds, and its Contact is at
//!   `contact-addr` (absent: unknown, e.g. from an older sender);
//! - `g <l_uuid> <call-id> <cseq>`: the sender removed the binding (unREGISTER).
//!
//! Times are relative, so that nodes need not agree on the clock to the second. Fields
//! are percent-encoded (any byte outside `!`..`~`, and `%`), so an l_uuid with spaces
//! survives. Unknown line kinds are skipped (a later version may add some); a line
//! that does not parse is counted, not fatal.

/// The version tag of the first line.
const MAGIC: &str = "uac-reg/1";

/// A binding as its owner knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub l_uuid: Vec<u8>,
    pub call_id: Vec<u8>,
    pub from_tag: Vec<u8>,
    pub cseq: u32,
    /// Seconds until the registrar drops the binding.
    pub expires_in: u32,
    /// Seconds until the owner planned to refresh it.
    pub refresh_in: u32,
    /// The host:port of the binding's Contact (empty: not said).
    pub contact_addr: Vec<u8>,
}

/// A binding its owner removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub l_uuid: Vec<u8>,
    pub call_id: Vec<u8>,
    pub cseq: u32,
}

/// One account's line of a `state` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Binding(Binding),
    Gone(Gone),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Bindings that changed, or (answering [`Kind::Sync`]) every binding the sender
    /// knows.
    State(Vec<Item>),
    /// The sender (re)joined: send what you know, then [`Kind::Done`].
    Sync,
    /// The end of the sender's answer to a [`Kind::Sync`].
    Done,
    /// The sender is stopping: its accounts are yours now.
    Leaving,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's node key (`host:port` of its DMQ address).
    pub sender: Vec<u8>,
    /// The sender's `reg_contact_addr` (`sync` and `done`).
    pub contact_addr: Option<Vec<u8>>,
    pub kind: Kind,
    /// Lines that did not parse (skipped).
    pub bad_lines: usize,
}

/// Why a body is not a message of ours at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The first line is not `uac-reg/1 <kind> <sender>`.
    BadHeader,
    /// A kind this version does not know.
    UnknownKind(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadHeader => f.write_str("not a uac-reg/1 message"),
            DecodeError::UnknownKind(k) => write!(f, "unknown message kind '{k}'"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn push_field(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b' ');
    if v.is_empty() {
        // An empty field would vanish between two spaces.
        out.extend_from_slice(b"%");
        return;
    }
    for &b in v {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn decode_field(v: &[u8]) -> Option<Vec<u8>> {
    if v == b"%" {
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hex = v.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

fn header(kind: &str, sender: &[u8], contact_addr: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    push_field(&mut out, sender);
    if let Some(c) = contact_addr {
        push_field(&mut out, c);
    }
    out.push(b'\n');
    out
}

/// A message without items (`sync`, `done`, `leaving`), with the sender's
/// `reg_contact_addr` when given.
pub fn encode_signal(kind: &Kind, sender: &[u8], contact_addr: Option<&[u8]>) -> Vec<u8> {
    let name = match kind {
        Kind::Sync => "sync",
        Kind::Done => "done",
        Kind::Leaving => "leaving",
        Kind::State(_) => "state",
    };
    header(name, sender, contact_addr)
}

fn encode_item(out: &mut Vec<u8>, item: &Item) {
    match item {
        Item::Binding(b) => {
            out.push(b'b');
            push_field(out, &b.l_uuid);
            push_field(out, &b.call_id);
            push_field(out, &b.from_tag);
            out.extend_from_slice(
                format!(" {} {} {}", b.cseq, b.expires_in, b.refresh_in).as_bytes(),
            );
            if !b.contact_addr.is_empty() {
                push_field(out, &b.contact_addr);
            }
        }
        Item::Gone(g) => {
            out.push(b'g');
            push_field(out, &g.l_uuid);
            push_field(out, &g.call_id);
            out.extend_from_slice(format!(" {}", g.cseq).as_bytes());
        }
    }
    out.push(b'\n');
}

/// `state` messages carrying `items`, each body at most `max_body` bytes (at least
/// one item per body, whatever its size). No items, no message.
pub fn encode_state(items: &[Item], sender: &[u8], max_body: usize) -> Vec<Vec<u8>> {
    let head = header("state", sender, None);
    let mut bodies = Vec::new();
    let mut cur = head.clone();
    let mut line = Vec::with_capacity(256);
    for item in items {
        line.clear();
        encode_item(&mut line, item);
        if cur.len() > head.len() && cur.len() + line.len() > max_body {
            bodies.push(std::mem::replace(&mut cur, head.clone()));
        }
        cur.extend_from_slice(&line);
    }
    if cur.len() > head.len() {
        bodies.push(cur);
    }
    bodies
}

fn number(v: Option<&[u8]>) -> Option<u32> {
    let v = v?;
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn decode_item(line: &[u8]) -> Option<Option<Item>> {
    let mut f = line.split(|&b| b == b' ');
    let kind = f.next()?;
    let item = match kind {
        b"b" => Item::Binding(Binding {
            l_uuid: decode_field(f.next()?)?,
            call_id: decode_field(f.next()?)?,
            from_tag: decode_field(f.next()?)?,
            cseq: number(f.next())?,
            expires_in: number(f.next())?,
            refresh_in: number(f.next())?,
            contact_addr: match f.next() {
                Some(c) => decode_field(c)?,
                None => Vec::new(),
            },
        }),
        b"g" => Item::Gone(Gone {
            l_uuid: decode_field(f.next()?)?,
            call_id: decode_field(f.next()?)?,
            cseq: number(f.next())?,
        }),
        // A later version's line: not ours to judge.
        _ => return Some(None),
    };
    if f.next().is_some() {
        return None;
    }
    let l_uuid = match &item {
        Item::Binding(b) => &b.l_uuid,
        Item::Gone(g) => &g.l_uuid,
    };
    if l_uuid.is_empty() {
        return None;
    }
    Some(Some(item))
}

/// Reads a body.
pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().ok_or(DecodeError::BadHeader)?;
    let mut h = first.split(|&b| b == b' ');
    if h.next() != Some(MAGIC.as_bytes()) {
        return Err(DecodeError::BadHeader);
    }
    let kind = h.next().ok_or(DecodeError::BadHeader)?;
    let sender = h
        .next()
        .and_then(decode_field)
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::BadHeader)?;
    let contact_addr = match h.next() {
        Some(c) => Some(decode_field(c).ok_or(DecodeError::BadHeader)?),
        None => None,
    };
    if h.next().is_some() {
        return Err(DecodeError::BadHeader);
    }
    let mut bad_lines = 0;
    let kind = match kind {
        b"sync" => Kind::Sync,
        b"done" => Kind::Done,
        b"leaving" => Kind::Leaving,
        b"state" => {
            let mut items = Vec::new();
            for line in lines.filter(|l| !l.is_empty()) {
                match decode_item(line) {
                    Some(Some(i)) => items.push(i),
                    Some(None) => {}
                    None => bad_lines += 1,
                }
            }
            Kind::State(items)
        }
        other => {
            return Err(DecodeError::UnknownKind(
                String::from_utf8_lossy(other).into_owned(),
            ));
        }
    };
    Ok(Message {
        sender,
        contact_addr,
        kind,
        bad_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(uuid: &[u8], cseq: u32) -> Item {
        Item::Binding(Binding {
            l_uuid: uuid.to_vec(),
            call_id: b"a84b4c76e66710@pc33".to_vec(),
            from_tag: b"456248".to_vec(),
            cseq,
            expires_in: 3600,
            refresh_in: 3507,
            contact_addr: b"10.0.0.1:5060".to_vec(),
        })
    }

    #[test]
    fn state_round_trips_with_awkward_bytes() {
        let items = vec![
            binding(b"acc 1%\n\xff", 7),
            Item::Gone(Gone {
                l_uuid: b"x".to_vec(),
                call_id: Vec::new(),
                cseq: 0,
            }),
        ];
        let bodies = encode_state(&items, b"127.0.0.1:5070", 60_000);
        assert_eq!(bodies.len(), 1);
        let m = decode(&bodies[0]).unwrap();
        assert_eq!(m.sender, b"127.0.0.1:5070");
        assert_eq!(m.kind, Kind::State(items));
        assert_eq!(m.bad_lines, 0);
    }

    #[test]
    fn signals_round_trip() {
        for k in [Kind::Sync, Kind::Done, Kind::Leaving] {
            let m = decode(&encode_signal(&k, b"n:1", None)).unwrap();
            assert_eq!(
                (m.kind, m.sender, m.contact_addr),
                (k, b"n:1".to_vec(), None)
            );
        }
        let m = decode(&encode_signal(&Kind::Sync, b"n:1", Some(b"10.0.0.1:5060"))).unwrap();
        assert_eq!(m.contact_addr.as_deref(), Some(&b"10.0.0.1:5060"[..]));
    }

    #[test]
    fn state_is_split_into_bodies_under_the_limit() {
        let items: Vec<Item> = (0..1000)
            .map(|i| binding(format!("account-{i}").as_bytes(), i))
            .collect();
        let bodies = encode_state(&items, b"n:1", 4096);
        assert!(bodies.len() > 10);
        let mut back = Vec::new();
        for b in &bodies {
            assert!(b.len() <= 4096, "{}", b.len());
            match decode(b).unwrap().kind {
                Kind::State(v) => back.extend(v),
                k => panic!("{k:?}"),
            }
        }
        assert_eq!(back, items);
        assert!(encode_state(&[], b"n:1", 4096).is_empty());
    }

    #[test]
    fn bad_lines_are_counted_and_skipped() {
        let body = b"uac-reg/1 state n:1\nb acc cid tag 1 2\nb acc cid tag x 2 3\nb % cid tag 1 2 3\nz future line\nb acc cid tag 1 2 3 h:1 4\nb acc cid tag 1 2 3 %G\ng acc cid 99999999999\ng ok cid 5\nb old cid tag 1 2 3\n";
        let m = decode(body).unwrap();
        assert_eq!(m.bad_lines, 6);
        assert_eq!(
            m.kind,
            Kind::State(vec![
                Item::Gone(Gone {
                    l_uuid: b"ok".to_vec(),
                    call_id: b"cid".to_vec(),
                    cseq: 5
                }),
                // Without the Contact field (an older sender): taken, Contact unknown.
                Item::Binding(Binding {
                    l_uuid: b"old".to_vec(),
                    call_id: b"cid".to_vec(),
                    from_tag: b"tag".to_vec(),
                    cseq: 1,
                    expires_in: 2,
                    refresh_in: 3,
                    contact_addr: Vec::new(),
                })
            ])
        );
    }

    #[test]
    fn foreign_bodies_are_refused() {
        for b in [
            &b""[..],
            b"hello",
            b"uac-reg/2 sync n:1",
            b"uac-reg/1 sync",
            b"uac-reg/1 sync %",
            b"uac-reg/1 sync n:1 c:1 extra",
            b"uac-reg/1 sync n:1 c%Z",
            b"uac-reg/1 sync n%G1",
        ] {
            assert_eq!(decode(b), Err(DecodeError::BadHeader), "{b:?}");
        }
        assert_eq!(
            decode(b"uac-reg/1 explode n:1"),
            Err(DecodeError::UnknownKind("explode".into()))
        );
    }

    #[test]
    fn decode_never_panics_on_mangled_input() {
        let good = encode_state(&[binding(b"acc", 3)], b"n:1", 1000).remove(0);
        for i in 0..good.len() {
            for b in [0u8, b' ', b'\n', b'%', 0xff, b'9'] {
                let mut m = good.clone();
                m[i] = b;
                let _ = decode(&m);
                let _ = decode(&m[..i]);
            }
        }
    }
}

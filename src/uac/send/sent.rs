//! The state `uac_req_send` carries from the sending process to the one that gets
//! the outcome: the template as it was, the identifiers tm used, and whether a
//! challenge was already answered, as bytes of the one shm-state codec.

use super::template::TemplateRef;
use crate::uac::shm_state::{Reader, Writer};

/// What the callback needs of a sent request: the template as it was, the
/// identifiers tm used, and whether a challenge was already answered. A
/// view over bytes that live elsewhere (the template, or the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent<'a> {
    pub req: TemplateRef<'a>,
    pub call_id: &'a [u8],
    pub from_tag: &'a [u8],
    pub cseq: u32,
    pub auth_done: bool,
}

impl<'a> Sent<'a> {
    fn fields(&self) -> [&'a [u8]; 16] {
        let t = &self.req;
        [
            t.method,
            t.ruri,
            t.furi,
            t.turi,
            t.ouri,
            t.hdrs,
            t.body,
            t.callid,
            t.sock,
            t.auser,
            t.apasswd,
            t.evparam,
            t.ftag,
            t.ttag,
            self.call_id,
            self.from_tag,
        ]
    }

    /// The bytes of the shm block ([`crate::uac::shm_state`]), in one allocation.
    pub fn encode(&self) -> Vec<u8> {
        let fields = self.fields();
        let ints = self.ints();
        let len = fields
            .iter()
            .map(|f| Writer::bytes_len(f.len()))
            .sum::<usize>()
            + ints.len() * Writer::U32_LEN;
        let mut w = Writer::with_capacity(len);
        for f in fields {
            w.bytes(f);
        }
        for n in ints {
            w.u32(n);
        }
        w.finish()
    }

    fn ints(&self) -> [u32; 9] {
        let t = &self.req;
        [
            t.evroute,
            t.evcode,
            t.evtype,
            t.flags,
            t.cseqno,
            t.fr_timeout,
            t.fr_inv_timeout,
            self.cseq,
            self.auth_done as u32,
        ]
    }

    /// The inverse of [`Sent::encode`], borrowing from `b`; `None` on
    /// malformed bytes.
    pub fn decode(b: &'a [u8]) -> Option<Sent<'a>> {
        let mut r = Reader::new(b);
        let mut t = TemplateRef {
            method: r.bytes()?,
            ruri: r.bytes()?,
            furi: r.bytes()?,
            turi: r.bytes()?,
            ouri: r.bytes()?,
            hdrs: r.bytes()?,
            body: r.bytes()?,
            callid: r.bytes()?,
            sock: r.bytes()?,
            auser: r.bytes()?,
            apasswd: r.bytes()?,
            evparam: r.bytes()?,
            ftag: r.bytes()?,
            ttag: r.bytes()?,
            ..TemplateRef::default()
        };
        let call_id = r.bytes()?;
        let from_tag = r.bytes()?;
        t.evroute = r.u32()?;
        t.evcode = r.u32()?;
        t.evtype = r.u32()?;
        t.flags = r.u32()?;
        t.cseqno = r.u32()?;
        t.fr_timeout = r.u32()?;
        t.fr_inv_timeout = r.u32()?;
        let cseq = r.u32()?;
        let auth_done = r.u32()? != 0;
        r.end()?;
        Some(Sent {
            req: t,
            call_id,
            from_tag,
            cseq,
            auth_done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uac::send::{Input, Key, Template};

    #[test]
    fn sent_roundtrip_and_garbage() {
        let mut t = Template::default();
        t.set(Key::Method, Input::Str(b"MESSAGE")).unwrap();
        t.set(Key::Body, Input::Str(b"\0\x01hello")).unwrap();
        t.set(Key::Evroute, Input::Int(1)).unwrap();
        t.set(Key::Evparam, Input::Str(b"p")).unwrap();
        t.set(Key::Cseqno, Input::Int(100)).unwrap();
        t.set(Key::FrTimeout, Input::Int(1500)).unwrap();
        t.set(Key::FrInvTimeout, Input::Int(2500)).unwrap();
        t.set(Key::Ftag, Input::Str(b"ft")).unwrap();
        t.set(Key::Ttag, Input::Str(b"tt")).unwrap();
        let s = Sent {
            req: t.as_ref(),
            call_id: b"cid",
            from_tag: b"tag",
            cseq: 11,
            auth_done: true,
        };
        let enc = s.encode();
        assert_eq!(Sent::decode(&enc), Some(s));
        let mut back = Template::default();
        Sent::decode(&enc).unwrap().req.copy_into(&mut back);
        assert_eq!(back, t, "every key survives the shm state");
        for cut in 0..enc.len() {
            assert_eq!(Sent::decode(&enc[..cut]), None);
        }
        let mut extra = enc.clone();
        extra.push(0);
        assert_eq!(Sent::decode(&extra), None);
        assert_eq!(Sent::decode(&[0xff; 64]), None);
    }
}

//! One `uacreg` row (table version 5, or 6 with `contact_user`) as typed values, its
//! validation, and the pieces of the REGISTER built from it (admin guide 7; RFC 3261
//! §10.2).

use std::fmt;

use crate::sip::uri;

/// Index of each string field in a stored record.
pub mod idx {
    pub const L_UUID: usize = 0;
    pub const L_USERNAME: usize = 1;
    pub const L_DOMAIN: usize = 2;
    pub const R_USERNAME: usize = 3;
    pub const R_DOMAIN: usize = 4;
    pub const REALM: usize = 5;
    pub const AUTH_USERNAME: usize = 6;
    pub const AUTH_PASSWORD: usize = 7;
    pub const AUTH_HA1: usize = 8;
    pub const AUTH_PROXY: usize = 9;
    pub const CONTACT_ADDR: usize = 10;
    pub const SOCKET: usize = 11;
    pub const CONTACT_USER: usize = 12;
    pub const COUNT: usize = 13;

    /// Column name of each string field, in index order.
    pub const NAMES: [&str; COUNT] = [
        "l_uuid",
        "l_username",
        "l_domain",
        "r_username",
        "r_domain",
        "realm",
        "auth_username",
        "auth_password",
        "auth_ha1",
        "auth_proxy",
        "contact_addr",
        "socket",
        "contact_user",
    ];
}

/// Column names in the order the loader asks for them: the C module's order, and
/// `contact_user` (version 6, kam 13423d1536) last, as in C master. A version 5 table
/// has all but the last.
pub const COLUMNS: [&str; 16] = [
    "l_uuid",
    "l_username",
    "l_domain",
    "r_username",
    "r_domain",
    "realm",
    "auth_username",
    "auth_password",
    "auth_ha1",
    "auth_proxy",
    "expires",
    "flags",
    "reg_delay",
    "contact_addr",
    "socket",
    "contact_user",
];

/// The table versions this module reads: 5 (Kamailio up to 6.1) and 6 (`contact_user`).
pub const TABLE_VERSIONS: &str = "5 or 6";

/// The columns to select from a table of `version` (from the `version` table); `None`
/// for a version this module cannot read.
pub fn columns(version: u32) -> Option<&'static [&'static str]> {
    match version {
        5 => Some(&COLUMNS[..COLUMNS.len() - 1]),
        6 => Some(&COLUMNS),
        _ => None,
    }
}

/// A row of `uacreg`, or the 15 (16) arguments of `uac.reg_add`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegRow {
    pub l_uuid: Vec<u8>,
    pub l_username: Vec<u8>,
    pub l_domain: Vec<u8>,
    pub r_username: Vec<u8>,
    pub r_domain: Vec<u8>,
    pub realm: Vec<u8>,
    pub auth_username: Vec<u8>,
    pub auth_password: Vec<u8>,
    pub auth_ha1: Vec<u8>,
    pub auth_proxy: Vec<u8>,
    pub expires: u32,
    pub flags: u32,
    pub reg_delay: u32,
    pub contact_addr: Vec<u8>,
    pub socket: Vec<u8>,
    /// Contact user instead of l_uuid (table version 6); empty: l_uuid, as before.
    pub contact_user: Vec<u8>,
}

impl fmt::Debug for RegRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RegRow {{ l_uuid: {:?}, l_username: {:?}, r_username: {:?}, r_domain: {:?}, <secrets> }}",
            String::from_utf8_lossy(&self.l_uuid),
            String::from_utf8_lossy(&self.l_username),
            String::from_utf8_lossy(&self.r_username),
            String::from_utf8_lossy(&self.r_domain),
        )
    }
}

/// Why a row was not loaded (logged with the row's l_uuid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError(pub String);

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest value accepted in any string column.
pub const MAX_FIELD: usize = 1024;

impl RegRow {
    /// The string fields in [`idx`] order.
    pub fn strings(&self) -> [&[u8]; idx::COUNT] {
        [
            &self.l_uuid,
            &self.l_username,
            &self.l_domain,
            &self.r_username,
            &self.r_domain,
            &self.realm,
            &self.auth_username,
            &self.auth_password,
            &self.auth_ha1,
            &self.auth_proxy,
            &self.contact_addr,
            &self.socket,
            &self.contact_user,
        ]
    }

    /// Checks a row as the C module's loader does (`uac_reg_db_to_reg`,
    /// `uac_reg_check_password`), and more: no control characters anywhere (they would end
    /// up in SIP headers), HA1 of 32 (MD5) or 64 (SHA-256) hex digits, lowercased.
    /// `default_contact` fills an empty `contact_addr`.
    pub fn validate(mut self, default_contact: &[u8]) -> Result<RegRow, RowError> {
        for (name, v, required) in [
            ("l_uuid", &self.l_uuid, true),
            ("l_username", &self.l_username, true),
            ("r_username", &self.r_username, true),
            ("r_domain", &self.r_domain, true),
            ("auth_username", &self.auth_username, true),
        ] {
            if required && v.is_empty() {
                return Err(RowError(format!(
                    "empty value not allowed for column '{name}' - ignoring record"
                )));
            }
        }
        for (name, v) in idx::NAMES.iter().zip(self.strings()) {
            if v.len() > MAX_FIELD {
                return Err(RowError(format!(
                    "column '{name}' too long - ignoring record"
                )));
            }
            if v.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err(RowError(format!(
                    "control character in column '{name}' - ignoring record"
                )));
            }
        }
        // Values printed into the Contact/From/To/R-URI must not break the URI syntax.
        for (name, v) in [
            ("l_uuid", &self.l_uuid),
            ("r_username", &self.r_username),
            ("r_domain", &self.r_domain),
            ("contact_addr", &self.contact_addr),
        ] {
            if v.iter()
                .any(|&b| b == b' ' || b == b'<' || b == b'>' || b == b'"')
            {
                return Err(RowError(format!(
                    "invalid character in column '{name}' - ignoring record"
                )));
            }
        }
        if !self.contact_user.is_empty() {
            // Printed as the user of the Contact URI as it is, as l_uuid is.
            if !uri::is_valid_user(&self.contact_user) {
                return Err(RowError(
                    "invalid character in column 'contact_user' - ignoring record".into(),
                ));
            }
        }
        if self.auth_password.is_empty() && self.auth_ha1.is_empty() {
            return Err(RowError(
                "no password value provided - ignoring record".into(),
            ));
        }
        if !self.auth_ha1.is_empty() {
            if self.auth_ha1.len() != 32 && self.auth_ha1.len() != 64 {
                return Err(RowError(format!(
                    "invalid HA1 length: {} - ignoring record",
                    self.auth_ha1.len()
                )));
            }
            if !self.auth_ha1.iter().all(u8::is_ascii_hexdigit) {
                return Err(RowError(
                    "invalid char in HA1 string - ignoring record".into(),
                ));
            }
            self.auth_ha1.make_ascii_lowercase();
        }
        if self.contact_addr.is_empty() {
            self.contact_addr = default_contact.to_vec();
        }
        if !self.contact_user.is_empty() {
            // The C module refuses to send when contact_addr already has a `line` parameter
            // (it would be silently overwritten); refused here, before anything is sent.
            let probe = contact_uri(b"x", b"", &self.contact_addr);
            match uri::parse(&probe) {
                Err(_) => {
                    return Err(RowError(
                        "contact_addr is not a valid host[:port][;params] - ignoring record".into(),
                    ));
                }
                Ok(u) if u.param(b"line").is_some() => {
                    return Err(RowError(
                        "contact_addr already contains a line parameter, which contact_user \
                         sets - ignoring record"
                            .into(),
                    ));
                }
                Ok(_) => {}
            }
        }
        Ok(self)
    }
}

/// The Request-URI of the REGISTER: `sip:r_domain`.
pub fn request_uri(r_domain: &[u8]) -> Vec<u8> {
    [b"sip:", r_domain].concat()
}

/// From and To of the REGISTER: `sip:r_username@r_domain`.
pub fn aor(r_username: &[u8], r_domain: &[u8]) -> Vec<u8> {
    [b"sip:", r_username, b"@", r_domain].concat()
}

/// The Contact URI of the REGISTER: `sip:l_uuid@contact_addr`, or with a `contact_user`,
/// `sip:contact_user@contact_addr;line=l_uuid` (kam 13423d1536: the `line` parameter tells
/// our binding in the 2xx). The `line` value is escaped where it is not a `paramchar`
/// (RFC 3261 §25.1), which leaves ordinary l_uuids as they are; it goes before any
/// `?headers` of `contact_addr`.
pub fn contact_uri(l_uuid: &[u8], contact_user: &[u8], contact_addr: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(16 + 2 * l_uuid.len() + contact_user.len() + contact_addr.len());
    u.extend_from_slice(b"sip:");
    if contact_user.is_empty() {
        u.extend_from_slice(l_uuid);
        u.push(b'@');
        u.extend_from_slice(contact_addr);
        return u;
    }
    u.extend_from_slice(contact_user);
    u.push(b'@');
    uri::push_with_param(&mut u, contact_addr, b"line", l_uuid);
    u
}

/// The extra headers: `Contact: <`[`contact_uri`]`>`, `Expires`, and the credentials
/// line when answering a challenge.
pub fn register_headers(
    l_uuid: &[u8],
    contact_user: &[u8],
    contact_addr: &[u8],
    expires: u32,
    auth: Option<&[u8]>,
    remove_contact_addr: Option<&[u8]>,
) -> Vec<u8> {
    let contact = contact_uri(l_uuid, contact_user, contact_addr);
    let mut h = Vec::with_capacity(96 + 2 * contact.len() + auth.map_or(0, <[u8]>::len));
    h.extend_from_slice(b"Contact: <");
    h.extend_from_slice(&contact);
    h.extend_from_slice(b">\r\n");
    if let Some(old) = remove_contact_addr {
        // reg_cluster: the binding another node made with its own Contact address goes
        // in the same request (RFC 3261 §10.2.2), so the registrar never holds two.
        h.extend_from_slice(b"Contact: <");
        h.extend_from_slice(&contact_uri(l_uuid, contact_user, old));
        h.extend_from_slice(b">;expires=0\r\n");
    }
    h.extend_from_slice(b"Expires: ");
    h.extend_from_slice(expires.to_string().as_bytes());
    h.extend_from_slice(b"\r\n");
    if let Some(a) = auth {
        h.extend_from_slice(a);
    }
    h
}

/// Which record a filter names (`uac_reg_enable`, `uac.reg_info`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAttr {
    LUuid,
    LUsername,
    RUsername,
    AuthUsername,
}

impl FilterAttr {
    pub fn parse(attr: &[u8]) -> Option<FilterAttr> {
        match attr {
            b"l_uuid" => Some(FilterAttr::LUuid),
            b"l_username" => Some(FilterAttr::LUsername),
            b"r_username" => Some(FilterAttr::RUsername),
            b"auth_username" => Some(FilterAttr::AuthUsername),
            _ => None,
        }
    }

    /// The string field the attribute compares.
    pub fn field(self) -> usize {
        match self {
            FilterAttr::LUuid => idx::L_UUID,
            FilterAttr::LUsername => idx::L_USERNAME,
            FilterAttr::RUsername => idx::R_USERNAME,
            FilterAttr::AuthUsername => idx::AUTH_USERNAME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RegRow {
        RegRow {
            l_uuid: b"u1".to_vec(),
            l_username: b"alice".to_vec(),
            l_domain: b"local".to_vec(),
            r_username: b"bob".to_vec(),
            r_domain: b"example.com".to_vec(),
            auth_username: b"bob".to_vec(),
            auth_password: b"pw".to_vec(),
            expires: 60,
            ..Default::default()
        }
    }

    #[test]
    fn validates() {
        let r = row().validate(b"1.2.3.4:5060").unwrap();
        assert_eq!(r.contact_addr, b"1.2.3.4:5060");
        let mut bad = row();
        bad.auth_password.clear();
        assert!(bad.validate(b"x").is_err());
        let mut ha1 = row();
        ha1.auth_ha1 = b"ABCDEF0123456789abcdef0123456789".to_vec();
        assert_eq!(
            ha1.validate(b"x").unwrap().auth_ha1,
            b"abcdef0123456789abcdef0123456789"
        );
        let mut ha1 = row();
        ha1.auth_ha1 = b"abc".to_vec();
        assert!(ha1.validate(b"x").is_err());
        let mut crlf = row();
        crlf.r_domain = b"a\r\nX: y".to_vec();
        assert!(crlf.validate(b"x").is_err());
        let mut empty = row();
        empty.l_uuid.clear();
        assert!(empty.validate(b"x").is_err());
        assert!(!format!("{:?}", row()).contains("pw"));
    }

    #[test]
    fn builds_request_pieces() {
        assert_eq!(request_uri(b"example.com"), b"sip:example.com");
        assert_eq!(aor(b"bob", b"example.com"), b"sip:bob@example.com");
        assert_eq!(
            register_headers(
                b"u1",
                b"",
                b"1.2.3.4:5060",
                60,
                Some(b"Authorization: x\r\n"),
                None
            ),
            b"Contact: <sip:u1@1.2.3.4:5060>\r\nExpires: 60\r\nAuthorization: x\r\n"
        );
        // reg_cluster: another node's Contact removed in the same REGISTER
        assert_eq!(
            register_headers(b"u1", b"", b"1.2.3.4:5060", 60, None, Some(b"5.6.7.8:5060")),
            &b"Contact: <sip:u1@1.2.3.4:5060>\r\nContact: <sip:u1@5.6.7.8:5060>;expires=0\r\nExpires: 60\r\n"[..]
        );
        // contact_user: the C master format, `<sip:cu@addr;line=l_uuid>`
        assert_eq!(
            register_headers(
                b"u1",
                b"1000",
                b"1.2.3.4:5060;transport=tcp",
                60,
                None,
                None
            ),
            b"Contact: <sip:1000@1.2.3.4:5060;transport=tcp;line=u1>\r\nExpires: 60\r\n"
        );
        assert_eq!(
            contact_uri(b"a;b@c", b"1000", b"h?X=1"),
            b"sip:1000@h;line=a%3Bb%40c?X=1"
        );
        // the line value is found again, unescaped, by the reply matcher's URI parser
        let u = contact_uri(b"a;b@c d", b"1000", b"h:5060;lr");
        let p = uri::parse(&u).unwrap();
        assert_eq!(
            uri::unescape(p.param(b"line").unwrap().value.unwrap()),
            &b"a;b@c d"[..]
        );
    }

    #[test]
    fn columns_per_version() {
        assert_eq!(columns(5).unwrap().len(), 15);
        assert!(!columns(5).unwrap().contains(&"contact_user"));
        assert_eq!(columns(6).unwrap().last(), Some(&"contact_user"));
        assert_eq!(&columns(6).unwrap()[..15], columns(5).unwrap());
        for v in [0, 1, 4, 7, u32::MAX] {
            assert_eq!(columns(v), None, "{v}");
        }
        // every column a string field is read from names that field
        for (i, name) in idx::NAMES.iter().enumerate() {
            assert!(COLUMNS.contains(name), "{name}");
            assert_eq!(idx::NAMES.iter().position(|n| n == name), Some(i));
        }
    }

    #[test]
    fn contact_user_validation() {
        let with = |cu: &[u8], addr: &[u8]| {
            let mut r = row();
            r.contact_user = cu.to_vec();
            r.contact_addr = addr.to_vec();
            r.validate(b"10.0.0.1:5060")
        };
        assert_eq!(with(b"1000", b"").unwrap().contact_addr, b"10.0.0.1:5060");
        assert!(with(b"+4930123;isub=7", b"h:5060;transport=tcp").is_ok());
        for bad in [&b"a@b"[..], b"a b", b"a:b", b"a%zz", b"a<b", b"\xc3\xa9"] {
            let e = with(bad, b"h").unwrap_err();
            assert!(e.0.contains("contact_user"), "{e}");
        }
        // `line` is ours to set: refused in contact_addr (C refuses at send time)
        for addr in [&b"h;line=x"[..], b"h:5060;LINE=x", b"h;lr;line"] {
            let e = with(b"1000", addr).unwrap_err();
            assert!(e.0.contains("line parameter"), "{e}");
        }
        assert!(with(b"1000", b"h;lines=2").is_ok());
        assert!(with(b"1000", b"h;;x").is_err());
        // without contact_user nothing changes (version 5 behaviour)
        assert!(with(b"", b"h;line=x").is_ok());
        assert!(with(b"", b"h;;x").is_ok());
    }
}

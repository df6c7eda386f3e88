//! Independent HTTP Digest implementation for the test registrar/UAS
//! (RFC 2617, RFC 7616; SIP usage per RFC 3261 §22.4 and RFC 8760).
//! Written from the RFCs; shares nothing with `src/`.
//!
//! - [`Challenge`]: server side; builds `WWW-Authenticate`/`Proxy-Authenticate`
//!   values and verifies the credentials a client sends back.
//! - [`verify`]: stand-alone verification of an `Authorization` value.
//! - [`authorize`]: client side, to exercise the verifier and to talk to Kamailio's auth.

use std::collections::BTreeMap;
use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::sip::SipMsg;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A quoted-string (RFC 3261 §25.1): `"` and `\` escaped.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Split `SHA-256-sess` into (`SHA-256`, true). Case-insensitive; unknown names are an error.
pub fn split_algorithm(alg: &str) -> Result<(&'static str, bool), String> {
    let up = alg.trim().to_ascii_uppercase();
    let (base, sess) = match up.strip_suffix("-SESS") {
        Some(b) => (b.to_string(), true),
        None => (up, false),
    };
    let base = match base.as_str() {
        "MD5" => "MD5",
        "SHA-256" => "SHA-256",
        "SHA-512-256" => "SHA-512-256",
        _ => return Err(format!("unknown digest algorithm {alg:?}")),
    };
    Ok((base, sess))
}

/// H(data) as lowercase hex for a (base or -sess) algorithm name (RFC 7616 §3.4.1).
pub fn h(algorithm: &str, data: &[u8]) -> Result<String, String> {
    Ok(match split_algorithm(algorithm)?.0 {
        "MD5" => hex(&Md5::digest(data)),
        "SHA-256" => hex(&Sha256::digest(data)),
        _ => hex(&Sha512_256::digest(data)),
    })
}

/// Hex length of a response for this algorithm.
fn hex_len(algorithm: &str) -> usize {
    match split_algorithm(algorithm) {
        Ok(("MD5", _)) => 32,
        _ => 64,
    }
}

/// Everything that goes into a digest response.
#[derive(Clone, Debug, Default)]
pub struct DigestInput<'a> {
    /// `None` means MD5 (RFC 2617 §3.2.1 default).
    pub algorithm: Option<&'a str>,
    /// The real user name (not the userhash).
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `None` for RFC 2069 compatibility mode.
    pub qop: Option<&'a str>,
    pub nc: &'a str,
    pub cnonce: &'a str,
    /// Message body, for auth-int.
    pub body: &'a [u8],
}

impl DigestInput<'_> {
    fn alg(&self) -> &str {
        self.algorithm.unwrap_or("MD5")
    }

    /// H(A1) (RFC 7616 §3.4.2): A1 = user:realm:pass, or for -sess
    /// H(user:realm:pass):nonce:cnonce.
    pub fn ha1(&self) -> Result<String, String> {
        let alg = self.alg();
        let (_, sess) = split_algorithm(alg)?;
        let base = h(
            alg,
            format!("{}:{}:{}", self.username, self.realm, self.password).as_bytes(),
        )?;
        if sess {
            h(
                alg,
                format!("{base}:{}:{}", self.nonce, self.cnonce).as_bytes(),
            )
        } else {
            Ok(base)
        }
    }

    /// H(A2) (RFC 7616 §3.4.3): method:uri, plus :H(body) for auth-int.
    pub fn ha2(&self) -> Result<String, String> {
        let alg = self.alg();
        match self.qop {
            Some(q) if q.eq_ignore_ascii_case("auth-int") => {
                let hb = h(alg, self.body)?;
                h(alg, format!("{}:{}:{hb}", self.method, self.uri).as_bytes())
            }
            Some(q) if !q.eq_ignore_ascii_case("auth") => Err(format!("unknown qop {q:?}")),
            _ => h(alg, format!("{}:{}", self.method, self.uri).as_bytes()),
        }
    }

    /// The `response` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 without qop).
    pub fn response(&self) -> Result<String, String> {
        let (ha1, ha2) = (self.ha1()?, self.ha2()?);
        let kd = match self.qop {
            Some(q) => format!("{ha1}:{}:{}:{}:{q}:{ha2}", self.nonce, self.nc, self.cnonce),
            None => format!("{ha1}:{}:{ha2}", self.nonce),
        };
        h(self.alg(), kd.as_bytes())
    }
}

/// Parse `Scheme k=v, k="v", ...` (RFC 7235 §2.1 auth-param list, RFC 3261 §25.1
/// quoted-string). Keys are lowercased; quoted values are unescaped; duplicate
/// keys are an error.
pub fn parse_params(value: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let v = value.trim();
    let (scheme, rest) = match v.find(char::is_whitespace) {
        Some(i) => (&v[..i], v[i..].trim_start()),
        None => (v, ""),
    };
    if scheme.is_empty() {
        return Err("empty credentials".into());
    }
    let mut map = BTreeMap::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let ks = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ',' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[ks..i].iter().collect::<String>().to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(format!("parameter {key:?} without value in {value:?}"));
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        val.push(chars[i + 1]);
                        i += 2;
                    }
                    '"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for {key:?}"));
            }
        } else {
            while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                val.push(chars[i]);
                i += 1;
            }
        }
        if map.insert(key.clone(), val).is_some() {
            return Err(format!("duplicate parameter {key:?}"));
        }
    }
    Ok((scheme.to_string(), map))
}

/// Parse a `Digest` Authorization / Proxy-Authorization value into its parameters.
pub fn parse_authorization(value: &str) -> Result<BTreeMap<String, String>, String> {
    let (scheme, map) = parse_params(value)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(format!("scheme is {scheme:?}, not Digest"));
    }
    Ok(map)
}

fn get<'m>(m: &'m BTreeMap<String, String>, k: &str) -> Result<&'m str, String> {
    m.get(k)
        .map(String::as_str)
        .ok_or_else(|| format!("missing {k}"))
}

/// Verify an Authorization value on its own (no challenge state): username (or
/// userhash), realm, presence of nonce/uri, algorithm known, qop/nc/cnonce
/// consistency, response format and value.
pub fn verify(
    authz_value: &str,
    method: &str,
    expected_user: &str,
    realm: &str,
    password: &str,
    body: &[u8],
) -> Result<(), String> {
    let m = parse_authorization(authz_value)?;
    let alg = m.get("algorithm").map(String::as_str);
    split_algorithm(alg.unwrap_or("MD5"))?;
    let got_realm = get(&m, "realm")?;
    if got_realm != realm {
        return Err(format!("realm {got_realm:?}, expected {realm:?}"));
    }
    let user = get(&m, "username")?;
    let userhash = m
        .get("userhash")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if userhash {
        // RFC 7616 §3.4.4: username = H(unq(username) ":" unq(realm)).
        let want = h(
            alg.unwrap_or("MD5"),
            format!("{expected_user}:{realm}").as_bytes(),
        )?;
        if !user.eq_ignore_ascii_case(&want) {
            return Err(format!(
                "userhash {user:?}, expected H({expected_user}:{realm}) = {want}"
            ));
        }
    } else if user != expected_user {
        return Err(format!("username {user:?}, expected {expected_user:?}"));
    }
    let nonce = get(&m, "nonce")?;
    if nonce.is_empty() {
        return Err("empty nonce".into());
    }
    let uri = get(&m, "uri")?;
    let qop = m.get("qop").map(String::as_str);
    let (nc, cnonce) = match qop {
        Some(q) => {
            if !q.eq_ignore_ascii_case("auth") && !q.eq_ignore_ascii_case("auth-int") {
                return Err(format!("qop {q:?} is neither auth nor auth-int"));
            }
            let nc = get(&m, "nc")?;
            if nc.len() != 8 || !nc.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("nc {nc:?} is not 8 hex digits"));
            }
            let cnonce = get(&m, "cnonce")?;
            if cnonce.is_empty() {
                return Err("empty cnonce".into());
            }
            (nc, cnonce)
        }
        None => {
            // RFC 2617 §3.2.2: cnonce and nc MUST NOT be sent without qop; but a
            // -sess H(A1) cannot be computed without cnonce, so it is needed then.
            if m.contains_key("nc") {
                return Err("nc present without qop".into());
            }
            let sess = split_algorithm(alg.unwrap_or("MD5"))?.1;
            match (sess, m.get("cnonce")) {
                (true, Some(c)) => ("", c.as_str()),
                (true, None) => return Err("-sess algorithm without qop needs a cnonce".into()),
                (false, Some(_)) => return Err("cnonce present without qop".into()),
                (false, None) => ("", ""),
            }
        }
    };
    let resp = get(&m, "response")?;
    let want_len = hex_len(alg.unwrap_or("MD5"));
    if resp.len() != want_len || !resp.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("response {resp:?} is not {want_len} hex digits"));
    }
    let want = DigestInput {
        algorithm: alg,
        username: expected_user,
        realm,
        password,
        method,
        uri,
        nonce,
        qop,
        nc,
        cnonce,
        body,
    }
    .response()?;
    if !resp.eq_ignore_ascii_case(&want) {
        return Err(format!(
            "wrong response {resp} (expected {want} for user {expected_user:?}, method {method}, \
             uri {uri:?}, algorithm {}, qop {qop:?})",
            alg.unwrap_or("MD5(default)")
        ));
    }
    Ok(())
}

/// A server challenge (RFC 7616 §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// `None` omits the parameter (client then assumes MD5).
    pub algorithm: Option<String>,
    /// `"auth"`, `"auth-int"`, `"auth,auth-int"`; `None` omits qop (RFC 2069 mode).
    pub qop: Option<String>,
    pub opaque: Option<String>,
    pub stale: bool,
    pub userhash: bool,
    pub domain: Option<String>,
}

impl Challenge {
    /// A challenge with a fresh random nonce and no other options.
    pub fn new(realm: &str) -> Challenge {
        Challenge {
            realm: realm.to_string(),
            nonce: super::sip::random_hex(16),
            algorithm: None,
            qop: None,
            opaque: None,
            stale: false,
            userhash: false,
            domain: None,
        }
    }

    pub fn algorithm(mut self, a: &str) -> Self {
        self.algorithm = Some(a.to_string());
        self
    }

    pub fn qop(mut self, q: &str) -> Self {
        self.qop = Some(q.to_string());
        self
    }

    pub fn opaque(mut self, o: &str) -> Self {
        self.opaque = Some(o.to_string());
        self
    }

    pub fn nonce(mut self, n: &str) -> Self {
        self.nonce = n.to_string();
        self
    }

    pub fn stale(mut self, s: bool) -> Self {
        self.stale = s;
        self
    }

    pub fn userhash(mut self, u: bool) -> Self {
        self.userhash = u;
        self
    }

    /// Same options, fresh nonce.
    pub fn renew(&self) -> Challenge {
        Challenge {
            nonce: super::sip::random_hex(16),
            stale: false,
            ..self.clone()
        }
    }

    /// The `WWW-Authenticate` / `Proxy-Authenticate` value.
    pub fn to_header_value(&self) -> String {
        let mut s = format!("Digest realm={}", quote(&self.realm));
        if let Some(d) = &self.domain {
            s.push_str(&format!(", domain={}", quote(d)));
        }
        s.push_str(&format!(", nonce={}", quote(&self.nonce)));
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque={}", quote(o)));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        if let Some(a) = &self.algorithm {
            s.push_str(&format!(", algorithm={a}"));
        }
        if let Some(qop) = &self.qop {
            s.push_str(&format!(", qop={}", quote(qop)));
        }
        if self.userhash {
            s.push_str(", userhash=true");
        }
        s
    }

    /// Parse a `WWW-Authenticate` / `Proxy-Authenticate` value.
    pub fn parse(value: &str) -> Result<Challenge, String> {
        let (scheme, m) = parse_params(value)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(format!("scheme is {scheme:?}, not Digest"));
        }
        let tru = |k: &str| m.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Challenge {
            realm: get(&m, "realm")?.to_string(),
            nonce: get(&m, "nonce")?.to_string(),
            algorithm: m.get("algorithm").cloned(),
            qop: m.get("qop").cloned(),
            opaque: m.get("opaque").cloned(),
            stale: tru("stale"),
            userhash: tru("userhash"),
            domain: m.get("domain").cloned(),
        })
    }

    /// The qop values offered.
    pub fn qops(&self) -> Vec<String> {
        self.qop
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Verify credentials against this challenge: everything [`verify`] checks,
    /// plus nonce, opaque, algorithm and qop matching what was offered.
    pub fn verify(
        &self,
        authz_value: &str,
        method: &str,
        user: &str,
        password: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let m = parse_authorization(authz_value)?;
        let nonce = get(&m, "nonce")?;
        if nonce != self.nonce {
            return Err(format!(
                "nonce {nonce:?} is not the challenged {:?}",
                self.nonce
            ));
        }
        match (&self.opaque, m.get("opaque")) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => {}
            (a, b) => return Err(format!("opaque {b:?}, challenged {a:?}")),
        }
        let offered = self.algorithm.as_deref().unwrap_or("MD5");
        let used = m.get("algorithm").map(String::as_str);
        if !used.unwrap_or("MD5").eq_ignore_ascii_case(offered) {
            return Err(format!(
                "algorithm {used:?}, challenged {:?}",
                self.algorithm
            ));
        }
        if used.is_none() && !offered.eq_ignore_ascii_case("MD5") {
            return Err(format!("algorithm missing, challenged {offered}"));
        }
        let offered_q = self.qops();
        match m.get("qop") {
            None if !offered_q.is_empty() => {
                return Err(format!("qop missing, challenged {:?}", self.qop));
            }
            Some(q) if !offered_q.contains(&q.to_ascii_lowercase()) => {
                return Err(format!("qop {q:?}, challenged {:?}", self.qop));
            }
            _ => {}
        }
        if m.get("userhash")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            && !self.userhash
        {
            return Err("userhash=true but the challenge did not offer it".into());
        }
        verify(authz_value, method, user, &self.realm, password, body)
    }

    /// Verify the credentials carried by a request: the Authorization or
    /// Proxy-Authorization whose realm is ours, its `uri` equal to the
    /// Request-URI (RFC 2617 §3.2.2.5), method and body from the request.
    pub fn verify_request(&self, req: &SipMsg, user: &str, password: &str) -> Result<(), String> {
        let mut found = None;
        for v in req
            .headers("Authorization")
            .into_iter()
            .chain(req.headers("Proxy-Authorization"))
        {
            if let Ok(m) = parse_authorization(v)
                && m.get("realm").map(String::as_str) == Some(self.realm.as_str())
            {
                found = Some((v, m));
                break;
            }
        }
        let Some((value, m)) = found else {
            return Err(format!("no Digest credentials for realm {:?}", self.realm));
        };
        let uri = get(&m, "uri")?;
        if uri != req.ruri() {
            return Err(format!(
                "uri {uri:?} is not the Request-URI {:?}",
                req.ruri()
            ));
        }
        self.verify(value, req.method(), user, password, &req.body)
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

/// Client side: the Authorization value answering `challenge_value`. Uses qop
/// `auth` when offered (else `auth-int`, else none), nc 00000001, a random cnonce,
/// and userhash when the challenge asks for it.
pub fn authorize(
    challenge_value: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    body: &[u8],
) -> Result<String, String> {
    authorize_with(
        challenge_value,
        method,
        uri,
        user,
        password,
        body,
        None,
        None,
    )
}

/// As [`authorize`] with a chosen qop (must be offered) and cnonce.
#[allow(clippy::too_many_arguments)]
pub fn authorize_with(
    challenge_value: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    body: &[u8],
    qop: Option<&str>,
    cnonce: Option<&str>,
) -> Result<String, String> {
    let c = Challenge::parse(challenge_value)?;
    let offered = c.qops();
    let qop = match qop {
        Some(q) => Some(q.to_string()),
        None if offered.iter().any(|q| q == "auth") => Some("auth".to_string()),
        None => offered.into_iter().find(|q| q == "auth-int"),
    };
    let cnonce = cnonce
        .map(str::to_string)
        .unwrap_or_else(|| super::sip::random_hex(8));
    let nc = "00000001";
    let alg = c.algorithm.as_deref();
    let response = DigestInput {
        algorithm: alg,
        username: user,
        realm: &c.realm,
        password,
        method,
        uri,
        nonce: &c.nonce,
        qop: qop.as_deref(),
        nc,
        cnonce: &cnonce,
        body,
    }
    .response()?;
    let shown_user = if c.userhash {
        h(
            alg.unwrap_or("MD5"),
            format!("{user}:{}", c.realm).as_bytes(),
        )?
    } else {
        user.to_string()
    };
    let mut s = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\"",
        quote(&shown_user),
        quote(&c.realm),
        quote(&c.nonce),
        quote(uri)
    );
    if let Some(a) = alg {
        s.push_str(&format!(", algorithm={a}"));
    }
    if let Some(o) = &c.opaque {
        s.push_str(&format!(", opaque={}", quote(o)));
    }
    if let Some(q) = &qop {
        s.push_str(&format!(", qop={q}, nc={nc}, cnonce={}", quote(&cnonce)));
    } else if split_algorithm(alg.unwrap_or("MD5"))?.1 {
        s.push_str(&format!(", cnonce={}", quote(&cnonce)));
    }
    if c.userhash {
        s.push_str(", userhash=true");
    }
    Ok(s)
}

//! Who may use the admin API: a bearer token compared in constant time, the rule that a
//! non-loopback address needs both a token and TLS, and no requests from other sites' pages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted: guessing it must be hopeless.
const MIN_TOKEN_BYTES: usize = 16;

/// The environment variable a token may come from instead of a file.
pub const TOKEN_VARIABLE: &str = "SLUICE_ADMIN_TOKEN";

/// Why the admin API cannot be served as asked.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the admin token file {path}: {error}")]
    TokenFile { path: PathBuf, error: std::io::Error },
    #[error("the admin token ({from}) is {length} bytes long: give at least {MIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32`)")]
    TokenTooShort { from: String, length: usize },
    #[error(
        "{address} is not a loopback address: the admin API swaps code into the running process, so it listens elsewhere \
         only with both a token (--admin-token-file or {TOKEN_VARIABLE}) and TLS (--admin-tls-cert and --admin-tls-key)"
    )]
    Exposed { address: SocketAddr },
    #[error("the admin token in {TOKEN_VARIABLE} is not UTF-8 text: give it as text (e.g. `openssl rand -hex 32`)")]
    TokenNotText,
}

/// The secret a client must present as `Authorization: Bearer <token>`. Only its SHA-256 is
/// kept, so that comparisons take the same time whatever the length of what is presented.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The token in `file` (surrounding whitespace ignored), or else in `SLUICE_ADMIN_TOKEN`;
    /// `None` if neither is given.
    pub fn from_file_or_environment(file: Option<&Path>) -> Result<Option<AdminToken>, AccessError> {
        let from = file.map_or_else(|| TOKEN_VARIABLE.to_owned(), |path| path.display().to_string());
        Self::secret_from_file_or_environment(file)?.map(|secret| AdminToken::new(&secret, &from)).transpose()
    }

    /// The token itself, as a client sends it: from `file`, or else `SLUICE_ADMIN_TOKEN`.
    pub fn secret_from_file_or_environment(file: Option<&Path>) -> Result<Option<String>, AccessError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| AccessError::TokenFile { path: path.to_owned(), error: source })?;
            return Ok(Some(text.trim().to_owned()));
        }
        match std::env::var(TOKEN_VARIABLE) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(std::env::VarError::NotPresent) => Ok(None),
            // Ignoring it would serve the API without the token its user meant to require.
            Err(std::env::VarError::NotUnicode(_)) => Err(AccessError::TokenNotText),
        }
    }

    fn new(secret: &str, from: &str) -> Result<AdminToken, AccessError> {
        if secret.len() < MIN_TOKEN_BYTES {
            return Err(AccessError::TokenTooShort { from: from.to_owned(), length: secret.len() });
        }
        Ok(AdminToken { digest: Sha256::digest(secret.as_bytes()).into() })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }
}

/// Refuses an admin API on a non-loopback address unless it has a token and TLS.
pub fn check_exposure(address: SocketAddr, token: bool, tls: bool) -> Result<(), AccessError> {
    if address.ip().is_loopback() || (token && tls) {
        return Ok(());
    }
    Err(AccessError::Exposed { address })
}

/// Middleware: every request but `/health`, `/ready` and the console's static files must carry the token.
pub async fn require_token(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    // The console's page and scripts hold no data: the page asks for the token and sends it
    // with every request it makes.
    let read = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if read && matches!(request.uri().path(), "/health" | "/ready" | "/" | "/console/app.js" | "/console/style.css") {
        return next.run(request).await;
    }
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|value| bearer_token(value.as_bytes())).map(<[u8]>::to_vec);
    match presented {
        Some(presented) if token.accepts(&presented) => next.run(request).await,
        _ => {
            let body = axum::Json(serde_json::json!({"error": "the admin API needs `Authorization: Bearer <token>` with its token"}));
            let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Whether a request is refused for coming from another site's page, and with a token or not.
#[derive(Debug, Clone, Copy)]
pub struct SiteGuard {
    /// No token: the API is open to whoever reaches it, so only names that cannot be rebound
    /// to another address are answered (an IP address, `localhost`).
    pub open: bool,
}

/// Middleware: a browser must not be a way in. A page of another site could otherwise post a
/// swap as a "simple" request (`text/plain`, a form) that needs no preflight, or read the
/// answers once its domain name is rebound to 127.0.0.1. So a request whose `Origin` is not
/// the API's own is refused, and so is one sent to a domain name while the API has no token.
/// Clients that are not browsers (curl, `sluice swap`, Prometheus) send neither header.
pub async fn refuse_other_sites(State(guard): State<SiteGuard>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).map(HeaderValue::as_bytes);
    if guard.open && host.is_some_and(|host| !names_an_address(host)) {
        let message = "the admin API has no token, so it answers only requests sent to an IP address or localhost (this \
                       one names a host, as a page rebinding its domain name to this machine would): use the address, or \
                       give the API a token";
        return refused(StatusCode::FORBIDDEN, message);
    }
    let origin = request.headers().get(header::ORIGIN).map(HeaderValue::as_bytes);
    if let Some(origin) = origin
        && !host.is_some_and(|host| same_origin(origin, host))
    {
        let message = "the admin API refuses requests from another site's page (its Origin is not the API's own address)";
        return refused(StatusCode::FORBIDDEN, message);
    }
    next.run(request).await
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// Whether a `Host` header names an IP address or `localhost` (with or without a port).
fn names_an_address(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else { return false };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => return bracketed.split_once(']').is_some_and(|(v6, _)| v6.parse::<std::net::Ipv6Addr>().is_ok()),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    // `localhost`, `localhost.` and `*.localhost` never come from DNS (RFC 6761): no page can
    // rebind them.
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether an `Origin` (`scheme://host[:port]`) is the page of the host the request was sent to.
fn same_origin(origin: &[u8], host: &[u8]) -> bool {
    let authority = origin.strip_prefix(b"http://").or_else(|| origin.strip_prefix(b"https://"));
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The token of an `Authorization` header's value `Bearer <token>`; the scheme's name is
/// matched whatever its case (RFC 9110 §11.1), the token exactly.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(b"Bearer ".len())?;
    scheme.eq_ignore_ascii_case(b"Bearer ").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_is_accepted() {
        let token = AdminToken::new("0123456789abcdef0123", "test").expect("long enough");
        assert!(token.accepts(b"0123456789abcdef0123"));
        for wrong in [&b""[..], b"0123456789abcdef012", b"0123456789abcdef01234", b"1123456789abcdef0123"] {
            assert!(!token.accepts(wrong), "{}", String::from_utf8_lossy(wrong));
        }
        assert!(matches!(AdminToken::new("short", "test"), Err(AccessError::TokenTooShort { length: 5, .. })));
    }

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case_and_the_token_exactly() {
        for header in [&b"Bearer secret"[..], b"bearer secret", b"BEARER secret"] {
            assert_eq!(bearer_token(header), Some(&b"secret"[..]), "{}", String::from_utf8_lossy(header));
        }
        for header in [&b"Bearer"[..], b"Basic secret", b"Bearer-secret", b""] {
            assert_eq!(bearer_token(header), None, "{}", String::from_utf8_lossy(header));
        }
    }

    #[test]
    fn only_addresses_are_answered_without_a_token_and_only_their_own_pages() {
        for host in [
            &b"127.0.0.1:9180"[..],
            b"127.0.0.1",
            b"localhost:9180",
            b"LOCALHOST",
            b"localhost.:1",
            b"app.localhost",
            b"[::1]:9180",
            b"[::1]",
            b"10.0.0.5:80",
        ] {
            assert!(names_an_address(host), "{}", String::from_utf8_lossy(host));
        }
        for host in [&b"attacker.example"[..], b"attacker.example:9180", b"127.0.0.1.nip.io:9180", b"[::1", b"", b"localhost.example"] {
            assert!(!names_an_address(host), "{}", String::from_utf8_lossy(host));
        }
        assert!(same_origin(b"http://127.0.0.1:9180", b"127.0.0.1:9180"));
        assert!(same_origin(b"https://Sluice.example", b"sluice.example"));
        for origin in [&b"http://evil.example"[..], b"null", b"http://127.0.0.1:9181", b"file://"] {
            assert!(!same_origin(origin, b"127.0.0.1:9180"), "{}", String::from_utf8_lossy(origin));
        }
    }

    #[test]
    fn other_addresses_need_a_token_and_tls() {
        let loopback: SocketAddr = "127.0.0.1:9180".parse().expect("address");
        let anywhere: SocketAddr = "0.0.0.0:9180".parse().expect("address");
        assert!(check_exposure(loopback, false, false).is_ok());
        assert!(check_exposure(anywhere, true, true).is_ok());
        assert!(check_exposure(anywhere, true, false).is_err());
        assert!(check_exposure(anywhere, false, true).is_err());
    }
}

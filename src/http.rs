//! The one HTTP client set-up, shared by the Vault backend and task
//! registration: a deadline covering connect, send and the whole answer;
//! redirects never followed (a redirect would carry a token elsewhere);
//! rustls with the Mozilla roots or a given CA; no proxy for loopback, the
//! usual `HTTPS_PROXY`/`NO_PROXY` otherwise; answers read into a bounded,
//! zeroized buffer.

use crate::env::{EnvNames, Environment};
use crate::error::Result;
use crate::secret::{read_bounded, ReadError};
use std::time::Duration;
use zeroize::Zeroizing;

/// The deadline of one network operation (a Vault call, a task
/// registration) when `{PREFIX}_HTTP_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connecting never takes longer than this, whatever the overall deadline.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The deadline from `{PREFIX}_HTTP_TIMEOUT` (whole seconds, 1 to 3600),
/// else [`DEFAULT_TIMEOUT`]. A bad value is a usage error naming it.
pub fn timeout_from_env(env: &dyn Environment, names: &EnvNames) -> Result<Duration> {
    Ok(crate::env::seconds(env, &names.http_timeout(), 3600)?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT))
}

/// How to build a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The deadline of each request (connect, send, whole answer).
    pub timeout: Duration,
    /// Whether the server is on loopback (never reached through a proxy).
    pub loopback: bool,
    /// CA certificates to trust instead of the built-in roots.
    pub ca_certs: Option<Vec<ureq::tls::Certificate<'static>>>,
}

/// A client with credstore's rules (see the module docs).
pub fn client(options: &ClientOptions) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(certs) = &options.ca_certs {
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(certs));
    }
    ureq::Agent::config_builder()
        .timeout_global(Some(options.timeout))
        .timeout_connect(Some(options.timeout.min(MAX_CONNECT_TIMEOUT)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(if options.loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        })
        .user_agent(concat!("credstore/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .new_agent()
}

/// Whether `host` (as in a URL, IPv6 in brackets or not) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url`'s host is loopback.
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(is_loopback_host))
        .unwrap_or(false)
}

/// Reads a response body into a zeroized buffer, at most
/// [`READ_LIMIT`](crate::secret::READ_LIMIT) bytes.
pub fn read_body(
    response: &mut ureq::http::Response<ureq::Body>,
) -> std::result::Result<Zeroizing<Vec<u8>>, ReadError> {
    // A backstop above read_bounded's own limit, which reports first.
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(2 * crate::secret::READ_LIMIT as u64)
        .reader();
    read_bounded(&mut reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:8200"));
        assert!(is_loopback_url("http://localhost:8200"));
        assert!(is_loopback_url("http://[::1]:8200"));
        assert!(!is_loopback_url("https://vault.example.com"));
        assert!(!is_loopback_url("http://10.0.0.1"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn timeout_from_the_environment() {
        let names = EnvNames::default();
        let env = crate::env::MapEnv::new();
        assert_eq!(timeout_from_env(&env, &names).unwrap(), DEFAULT_TIMEOUT);
        let env = env.with("CREDSTORE_HTTP_TIMEOUT", "7");
        assert_eq!(
            timeout_from_env(&env, &names).unwrap(),
            Duration::from_secs(7)
        );
        let env = crate::env::MapEnv::new().with("CREDSTORE_HTTP_TIMEOUT", "0");
        assert_eq!(timeout_from_env(&env, &names).unwrap_err().exit_code(), 2);
    }
}

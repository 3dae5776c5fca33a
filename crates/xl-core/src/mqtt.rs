//! Where an MQTT broker is: the `mqtt://` / `mqtts://` URL that both the gate ingest (`[mqtt]`)
//! and MQTT out (`[mqtt_out]`) are configured with, checked the same way for both.

use std::fmt;

/// A broker's host, port and whether the connection is TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerAddr {
    /// Parses `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default
    /// 8883); `tcp://` and `ssl://` are their aliases. IPv6 hosts come without brackets. A URL
    /// with credentials is refused (they belong in the config's `username` and `password`).
    /// The error says what is wrong without repeating the URL, which may hold a password.
    pub fn parse(url: &str) -> Result<BrokerAddr, String> {
        let u = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
        let tls = match u.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "must start with mqtt:// or mqtts:// (got {other}://)"
                ));
            }
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err("carries credentials: move them to `username` and `password`".into());
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(BrokerAddr { host, port, tls })
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Whether `pem` holds a PEM certificate (a `ca_file`'s contents).
pub fn has_pem_certificate(pem: &[u8]) -> bool {
    pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_default_ports_and_ipv6_hosts() {
        let b = BrokerAddr::parse("mqtt://broker.lan").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.lan", 1883, false)
        );
        let b = BrokerAddr::parse("mqtts://[::1]").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("::1", 8883, true));
        let b = BrokerAddr::parse("tcp://10.0.0.2:1884/").unwrap();
        assert_eq!((b.port, b.tls), (1884, false));
        assert!(BrokerAddr::parse("ssl://h").unwrap().tls);
        assert_eq!(b.to_string(), "mqtt://10.0.0.2:1884");
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (url, want) in [
            ("broker.lan", "is not a URL"),
            (
                "http://h",
                "must start with mqtt:// or mqtts:// (got http://)",
            ),
            ("mqtt://u:hunter2@h", "carries credentials"),
            ("mqtt://", "has no host"),
        ] {
            let e = BrokerAddr::parse(url).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn a_pem_certificate_is_recognised() {
        assert!(has_pem_certificate(
            b"junk\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        ));
        assert!(!has_pem_certificate(b"-----BEGIN PRIVATE KEY-----"));
    }
}

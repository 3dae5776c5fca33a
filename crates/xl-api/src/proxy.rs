//! The client's address behind reverse proxies.
//!
//! Behind the reverse proxy that deploy/README recommends every connection comes from the
//! proxy, so every user would share one address in the login limiter, the audit log and the
//! gate push allow-lists. `[server] trusted_proxies` lists the proxies whose `X-Forwarded-For`
//! is believed; a request from anyone else keeps its socket's address, whatever it claims.
//!
//! Only `X-Forwarded-For` is read (nginx's `$proxy_add_x_forwarded_for`, Caddy, Traefik and
//! Kubernetes ingress controllers all send it). `Forwarded` (RFC 7239) and `X-Real-IP` are
//! ignored: one header, so a proxy that sets one but passes the other through from the client
//! cannot be fooled into believing the passed-through one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed (addresses and CIDR blocks). Empty (the
/// default): no one's.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Parses `10.0.0.5`, `10.0.0.0/8`, `::1`, `fd00::/8`. The error names the entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref().trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(a) => IpNet::from(a.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "[{i}] {e:?} is neither an IP address nor a CIDR block \
                             (like 10.0.0.5 or 10.0.0.0/8)"
                        ));
                    }
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is one of the proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer`: `peer` itself unless it is
    /// a trusted proxy; then the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy (each proxy appends the address it was reached from, so entries to the
    /// left of the first untrusted one may be made up by the client). All entries trusted: the
    /// left-most. No header, or an entry that is not an address where one is needed: `peer`
    /// (a misconfigured proxy then shares one address for everyone, which only limits more).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        let mut client = peer;
        while let Some(hop) = hops.pop() {
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
                return peer;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The socket's own address, kept beside the resolved [`ConnectInfo`] when a trusted proxy
/// forwarded the request.
#[derive(Debug, Clone, Copy)]
pub struct SocketPeer(pub SocketAddr);

/// Replaces the request's `ConnectInfo<SocketAddr>` with the client's address as
/// [`TrustedProxies::client`] resolves it (port 0 when forwarded), so that everything that
/// reads the peer (the login limiter, the audit log, the gate push allow-lists) sees the same
/// address. The socket's address stays available as [`SocketPeer`].
pub(crate) async fn resolve_client(
    State(proxies): State<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    if !proxies.is_empty()
        && let Some(ConnectInfo(socket)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
    {
        let socket = *socket;
        let client = proxies.client(socket.ip(), req.headers());
        if client != socket.ip().to_canonical() {
            let ext = req.extensions_mut();
            ext.insert(SocketPeer(socket));
            ext.insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let p = TrustedProxies::parse(&["10.0.0.5", "172.16.0.0/12"]).unwrap();
        let h = xff(&["6.6.6.6, 192.168.1.20"]);
        // From the proxy: the right-most entry (what the proxy appended).
        assert_eq!(p.client(ip("10.0.0.5"), &h), ip("192.168.1.20"));
        // From anyone else: the socket's address, whatever the header says.
        assert_eq!(p.client(ip("192.168.1.99"), &h), ip("192.168.1.99"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.5"), &h),
            ip("10.0.0.5")
        );
        // A chain of trusted proxies is walked from the right; several headers are one list.
        let h = xff(&["6.6.6.6, 192.168.1.20", "172.16.3.4"]);
        assert_eq!(p.client(ip("10.0.0.5"), &h), ip("192.168.1.20"));
        // Everything trusted: the left-most.
        let h = xff(&["172.16.9.9, 10.0.0.5"]);
        assert_eq!(p.client(ip("10.0.0.5"), &h), ip("172.16.9.9"));
        // No header, or garbage where the client should be: the proxy's own address.
        assert_eq!(p.client(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
        assert_eq!(
            p.client(ip("10.0.0.5"), &xff(&["1.1.1.1, not-an-ip"])),
            ip("10.0.0.5")
        );
        // Ports and IPv4-mapped IPv6 (a dual-stack listener) are understood.
        assert_eq!(
            p.client(ip("::ffff:10.0.0.5"), &xff(&["192.168.1.20:5123"])),
            ip("192.168.1.20")
        );
        assert_eq!(
            p.client(ip("10.0.0.5"), &xff(&["[2001:db8::7]:80"])),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let e = TrustedProxies::parse(&["10.0.0.1", "10.0.0.0/33"]).unwrap_err();
        assert!(e.starts_with("[1] \"10.0.0.0/33\""), "{e}");
        assert!(TrustedProxies::parse(&["::1", "fd00::/8"]).is_ok());
    }
}

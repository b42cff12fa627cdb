//! Where a webhook may be delivered (SPEC §13): `https` URLs whose every address is public —
//! never a loopback, private, link-local, multicast, or otherwise special-purpose one — checked
//! when an endpoint is registered and again before every connection, against the addresses
//! the name resolves to then, so that a name that later resolves to an internal address (DNS
//! rebinding) is refused and the connection goes to the address that was checked.
//!
//! `serve --webhooks-allow-insecure-loopback` lifts both rules for loopback `http` URLs only,
//! for tests and local development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether loopback `http` targets are allowed (tests, local development only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_insecure_loopback: bool,
}

/// Why a webhook URL or one of its addresses is refused. Messages name the rule, never the
/// resolved address list of someone else's network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not an absolute URL: {0}")]
    Malformed(String),
    #[error("only https URLs receive webhooks")]
    NotHttps,
    #[error("a webhook URL carries no user name or password")]
    Credentials,
    #[error("a webhook URL names a host")]
    NoHost,
    #[error("{0} is not a public address (loopback, private, link-local, multicast and other special-purpose addresses never receive webhooks)")]
    NotPublic(IpAddr),
    #[error("the host resolves to no address")]
    Unresolved,
    #[error("the host could not be resolved: {0}")]
    Resolve(String),
}

/// A webhook URL that passed the rules that need no resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl WebhookUrl {
    /// Checks scheme, credentials, host, and an address written in the URL.
    pub fn parse(text: &str, policy: TargetPolicy) -> Result<Self, TargetError> {
        let url = url::Url::parse(text).map_err(|e| TargetError::Malformed(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let host = url.host().ok_or(TargetError::NoHost)?;
        let literal = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_insecure_loopback && is_loopback_host(&url) => {}
            _ => return Err(TargetError::NotHttps),
        }
        if let Some(ip) = literal {
            check(ip, policy)?;
        }
        Ok(Self { url })
    }

    /// The URL as sent: its host names the server (`Host`, TLS server name), never the
    /// address connected to.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host as the URL names it (for TLS, the name the certificate must carry).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => String::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }

    /// Resolves the host now and checks every address it resolves to: all must be allowed
    /// (one internal address among public ones refuses the whole name). The caller connects
    /// to one of the addresses returned, never resolves again.
    pub async fn resolve(&self, policy: TargetPolicy) -> Result<Vec<SocketAddr>, TargetError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((self.host(), self.port()))
            .await
            .map_err(|e| TargetError::Resolve(e.kind().to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(TargetError::Unresolved);
        }
        for address in &addresses {
            check(address.ip(), policy)?;
        }
        Ok(addresses)
    }
}

/// `localhost` or a loopback literal: what the insecure-loopback switch allows.
fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Refuses every address that is not public, except loopback under the insecure switch.
pub fn check(ip: IpAddr, policy: TargetPolicy) -> Result<(), TargetError> {
    let ip = canonical(ip);
    if policy.allow_insecure_loopback && ip.is_loopback() {
        return Ok(());
    }
    if is_public(ip) {
        Ok(())
    } else {
        Err(TargetError::NotPublic(ip))
    }
}

/// An IPv6 address that carries an IPv4 one (mapped, NAT64 well-known prefix, 6to4) as that
/// IPv4 address, so that the IPv4 rules apply to it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96, RFC 6052.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            // 2002::/16 (6to4, RFC 3056): the IPv4 address in bits 16–47.
            if s[0] == 0x2002 {
                let [a, b] = s[1].to_be_bytes();
                let [c, d] = s[2].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Public unicast: none of the IANA special-purpose blocks that name hosts inside a network,
/// the host itself, or nothing at all (RFC 6890 and its updates).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network", RFC 791
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, RFC 6890
        || (a == 198 && (18..20).contains(&b)) // benchmarking, RFC 2544
        || a >= 240) // reserved, RFC 1112
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), RFC 3879
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, RFC 3849
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo among them)
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only, RFC 6666
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_insecure_loopback: false,
    };
    const LOCAL: TargetPolicy = TargetPolicy {
        allow_insecure_loopback: true,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn only_public_addresses_receive_webhooks() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(check(ip(public), STRICT), Ok(()), "{public}");
        }
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254", // cloud metadata
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",   // IPv4-mapped loopback
            "::ffff:10.0.0.1",    // IPv4-mapped private
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "2002:7f00:1::1",     // 6to4 of 127.0.0.1
            "2001::1",            // Teredo
        ] {
            assert!(
                matches!(check(ip(internal), STRICT), Err(TargetError::NotPublic(_))),
                "{internal} must be refused"
            );
        }
    }

    #[test]
    fn the_insecure_switch_allows_loopback_and_nothing_else() {
        assert_eq!(check(ip("127.0.0.1"), LOCAL), Ok(()));
        assert_eq!(check(ip("::1"), LOCAL), Ok(()));
        assert!(check(ip("10.0.0.1"), LOCAL).is_err());
        assert!(check(ip("169.254.169.254"), LOCAL).is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/hook", LOCAL).is_ok());
        assert_eq!(
            WebhookUrl::parse("http://127.0.0.1:8080/hook", STRICT),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            WebhookUrl::parse("http://partner.example/hook", LOCAL),
            Err(TargetError::NotHttps),
            "http stays refused for any other host"
        );
    }

    #[test]
    fn urls_are_https_without_credentials_and_without_internal_literals() {
        assert!(WebhookUrl::parse("https://hooks.partner.example/consent", STRICT).is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://partner.example/", STRICT),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            WebhookUrl::parse("https://user:pw@partner.example/", STRICT),
            Err(TargetError::Credentials)
        );
        assert!(matches!(
            WebhookUrl::parse("https://10.1.2.3/hook", STRICT),
            Err(TargetError::NotPublic(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("https://[::ffff:169.254.169.254]/", STRICT),
            Err(TargetError::NotPublic(_))
        ));
        // Integer and octal spellings of an IPv4 address are normalised by the URL parser.
        assert!(matches!(
            WebhookUrl::parse("https://2130706433/", STRICT),
            Err(TargetError::NotPublic(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("https://0177.0.0.1/", STRICT),
            Err(TargetError::NotPublic(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("not a url", STRICT),
            Err(TargetError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_name_is_checked_against_what_it_resolves_to() {
        // `localhost` resolves to loopback: refused, unless the insecure switch is on.
        let url = WebhookUrl::parse("https://localhost:9/hook", STRICT).expect("parses");
        assert!(matches!(
            url.resolve(STRICT).await,
            Err(TargetError::NotPublic(_))
        ));
        let local = url.resolve(LOCAL).await.expect("loopback allowed");
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }
}

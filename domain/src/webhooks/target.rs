//! Where a webhook may be sent. Groundswell must never become a way to reach the network it
//! runs in: an endpoint's URL is `https` (plain `http` only when the operator allows private
//! targets, for development), and no address in a loopback, private, link-local, multicast,
//! unspecified, shared, documentation or reserved range is ever connected to. URLs naming such
//! an address are refused when they are saved; names are checked again on the addresses they
//! resolve to, at delivery (the API's resolver calls [`is_forbidden`]).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::LazyLock,
};

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

use crate::InvalidInput;

/// Whether private network targets are allowed: only for tests and local development.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

/// An endpoint's URL, checked against the [`TargetPolicy`] it was saved under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrl(Url);

/// Longest URL accepted.
pub const MAX_URL_LENGTH: usize = 2000;

impl EndpointUrl {
    pub fn parse(value: &str, policy: TargetPolicy) -> Result<Self, InvalidInput> {
        let value = value.trim();
        if value.len() > MAX_URL_LENGTH {
            return Err(InvalidInput::new(format!(
                "must be at most {MAX_URL_LENGTH} characters"
            )));
        }
        let url = Url::parse(value).map_err(|_| {
            InvalidInput::new("must be an absolute URL, like https://example.org/hooks")
        })?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_private => {}
            "http" => return Err(InvalidInput::new("must use https")),
            _ => return Err(InvalidInput::new("must be an https URL")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidInput::new("must not carry a user name or password"));
        }
        match url.host() {
            None => return Err(InvalidInput::new("must name a host")),
            Some(Host::Domain(_)) => {}
            Some(Host::Ipv4(ip)) => refuse_forbidden(IpAddr::V4(ip), policy)?,
            Some(Host::Ipv6(ip)) => refuse_forbidden(IpAddr::V6(ip), policy)?,
        }
        Ok(Self(url))
    }

    /// A URL read back from the database, checked again under today's policy (the setting may
    /// have changed since it was saved).
    pub fn recheck(value: &str, policy: TargetPolicy) -> Result<Self, InvalidInput> {
        Self::parse(value, policy)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

fn refuse_forbidden(ip: IpAddr, policy: TargetPolicy) -> Result<(), InvalidInput> {
    if !policy.allow_private && is_forbidden(ip) {
        return Err(InvalidInput::new(
            "must not point at a loopback, private, link-local or otherwise reserved address",
        ));
    }
    Ok(())
}

/// Ranges the standard library has no test for: shared address space, IETF protocol
/// assignments, benchmarking, the reserved 240/4, NAT64 and 6to4 (which embed a v4 address,
/// checked below), documentation, the old site-local range, discard-only and ORCHID.
static EXTRA_V4: LazyLock<Vec<Ipv4Net>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "240.0.0.0/4",
    ]
    .iter()
    .filter_map(|net| net.parse().ok())
    .collect()
});

static EXTRA_V6: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    [
        "::/96",
        // IPv4-translated (SIIT): a translator on the way reaches the v4 address it embeds.
        "::ffff:0:0:0/96",
        // Local-use NAT64, where the v4 address may sit anywhere: a translator's own network.
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fec0::/10",
    ]
    .iter()
    .filter_map(|net| net.parse().ok())
    .collect()
});

/// Whether Groundswell refuses to connect to `ip` (unless private targets are allowed).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_forbidden_v4(ip),
        IpAddr::V6(ip) => is_forbidden_v6(ip),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || EXTRA_V4.iter().any(|net| net.contains(&ip))
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    // A v4 address written as v6 (::ffff:127.0.0.1) is the v4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the v4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_forbidden_v4(Ipv4Addr::from(ip.to_bits() as u32));
    }
    // 6to4 (2002::/16) reaches the v4 address in bits 16 to 48.
    if segments[0] == 0x2002 {
        return is_forbidden_v4(Ipv4Addr::from((ip.to_bits() >> 80) as u32));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || EXTRA_V6.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const ON: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    #[test]
    fn private_and_reserved_addresses_are_forbidden_in_every_spelling() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or_else(|_| panic!("{ip}"));
            assert!(is_forbidden(parsed), "{ip} should be forbidden");
        }
        for ip in [
            "93.184.215.14",
            "2606:4700::1111",
            "::ffff:93.184.215.14",
            "1.1.1.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or_else(|_| panic!("{ip}"));
            assert!(!is_forbidden(parsed), "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_must_be_https_and_not_name_a_private_address() {
        assert!(EndpointUrl::parse("https://hooks.example.org/gs", OFF).is_ok());
        assert!(EndpointUrl::parse("http://hooks.example.org/gs", OFF).is_err());
        assert!(EndpointUrl::parse("ftp://hooks.example.org/gs", OFF).is_err());
        assert!(EndpointUrl::parse("https://user:pw@hooks.example.org/", OFF).is_err());
        assert!(EndpointUrl::parse("not a url", OFF).is_err());
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://10.0.0.5/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://2130706433/hook",
            "https://0x7f.0.0.1/hook",
            "https://[::ffff:7f00:1]/hook",
            "https://127.1/hook",
            "https://0177.0.0.1/hook",
            "https://0x7f.1/hook",
            "https://0x7f000001/hook",
            "https://127.0.0.1./hook",
            "https://%31%32%37.0.0.1/hook",
            "https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/hook",
            "https://0.0.0.0/hook",
            "https://0/hook",
            "https://[::]/hook",
            "https://[::127.0.0.1]/hook",
            "https://[::ffff:0:7f00:1]/hook",
            "https://[64:ff9b:1::a00:1]/hook",
            "https://[fe80::1]/hook",
            "https://[ff02::1]/hook",
            "https://224.0.0.1/hook",
            "https://100.100.100.200/hook",
        ] {
            assert!(EndpointUrl::parse(url, OFF).is_err(), "{url}");
            assert!(EndpointUrl::parse(url, ON).is_ok(), "{url}");
        }
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/hook", ON).is_ok());
        assert!(
            EndpointUrl::parse(&format!("https://a.example/{}", "x".repeat(2000)), ON).is_err()
        );
    }
}

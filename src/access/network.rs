//! Where a request comes from, and which API accounts may sign in from there.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy (the left-most one when all
/// are). `forwarded_for` holds every `X-Forwarded-For` header value in order. `None` when a
/// trusted proxy forwarded an address that cannot be read: the client is then unknown.
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: &[&str],
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical(peer);
    if !is_in(peer, trusted_proxies) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    if hops.is_empty() || hops.iter().all(|h| h.is_empty()) {
        return Some(peer);
    }
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = canonical(parse_hop(hop)?);
        if !is_in(ip, trusted_proxies) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

/// Whether the TCP peer is one of `trusted_proxies` (IPv4-mapped IPv6 peers compare as IPv4).
pub fn is_trusted_proxy(peer: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    is_in(canonical(peer), trusted_proxies)
}

/// Whether an API account (`username` in `apiAccountUsernames`) may sign in from the client
/// address `ip` gives; any other member may, from anywhere, and `ip` is then not asked (the
/// session check asks it only of API accounts). An empty `apiAccountIPs` lets no API account in.
pub fn api_account_allowed(
    username: &str,
    ip: impl FnOnce() -> Option<IpAddr>,
    api_account_usernames: &[String],
    api_account_ips: &[IpNet],
) -> bool {
    if api_account_usernames.is_empty() || !api_account_usernames.contains(&username.to_lowercase())
    {
        return true;
    }
    is_api_account_address(ip(), api_account_ips)
}

/// Whether API accounts may sign in from the client address `ip` (one of `apiAccountIPs`).
pub fn is_api_account_address(ip: Option<IpAddr>, api_account_ips: &[IpNet]) -> bool {
    ip.is_some_and(|ip| is_in(canonical(ip), api_account_ips))
}

fn is_in(ip: IpAddr, networks: &[IpNet]) -> bool {
    networks.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().unwrap_or_else(|e| unreachable!("{n}: {e}")))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| unreachable!("{text}: {e}"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["10.1.2.3"], &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(ip("203.0.113.9"), &[], &[]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        assert_eq!(
            client_ip(peer, &["198.51.100.7, 10.0.0.5"], &trusted),
            Some(ip("198.51.100.7"))
        );
        // A client cannot push its own choice in front of the real hops.
        assert_eq!(
            client_ip(peer, &["10.1.2.3", "198.51.100.7,10.0.0.5"], &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(peer, &["10.0.0.9, 10.0.0.5"], &trusted),
            Some(ip("10.0.0.9"))
        );
        assert_eq!(client_ip(peer, &[], &trusted), Some(peer));
        assert_eq!(
            client_ip(peer, &["[2001:db8::1]:443"], &trusted),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            client_ip(peer, &["198.51.100.7:5000"], &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(client_ip(peer, &["unknown"], &trusted), None);
        // Bytes a client sent that are not text still count as a hop that cannot be read.
        assert_eq!(client_ip(peer, &["\u{fffd}, 10.0.0.5"], &trusted), None);
        assert!(is_trusted_proxy(ip("::ffff:127.0.0.1"), &trusted));
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &["192.0.2.1"], &trusted),
            Some(ip("192.0.2.1"))
        );
    }

    #[test]
    fn api_accounts_sign_in_only_from_listed_addresses() {
        let users = vec!["api-bot".to_string()];
        let ips = nets(&["10.1.2.3/32", "2001:db8::/32"]);
        assert!(api_account_allowed(
            "API-Bot",
            || Some(ip("10.1.2.3")),
            &users,
            &ips
        ));
        assert!(api_account_allowed(
            "api-bot",
            || Some(ip("2001:db8::5")),
            &users,
            &ips
        ));
        assert!(api_account_allowed(
            "api-bot",
            || Some(ip("::ffff:10.1.2.3")),
            &users,
            &ips
        ));
        assert!(!api_account_allowed(
            "api-bot",
            || Some(ip("10.1.2.4")),
            &users,
            &ips
        ));
        assert!(!api_account_allowed("api-bot", || None, &users, &ips));
        assert!(!api_account_allowed(
            "api-bot",
            || Some(ip("10.1.2.3")),
            &users,
            &[]
        ));
        assert!(api_account_allowed(
            "jane",
            || Some(ip("192.0.2.1")),
            &users,
            &[]
        ));
    }
}

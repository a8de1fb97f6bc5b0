//! The addresses no hook may reach (docs/kazoo.md#target-checks): one classification, used by
//! the API on literal `uri` hosts and by the dispatcher on every address it connects to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for addresses a hook must not reach unless private targets are allowed: every range of
/// the IANA special-purpose registries that is not globally reachable (loopback, private, shared,
/// link-local with the cloud metadata services, documentation, benchmarking, multicast,
/// reserved), and IPv6 addresses carrying an IPv4 address that is (mapped, compatible, NAT64,
/// 6to4). The API checks literal `uri` hosts with it, the dispatcher every address it connects to.
pub fn is_restricted_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_restricted_ipv4(address),
        IpAddr::V6(address) => is_restricted_ipv6(address),
    }
}

/// IPv4 networks no hook may reach, as (network, prefix length).
const RESTRICTED_IPV4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", 0.0.0.0 included
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared (carrier NAT), Alibaba's metadata 100.100.100.200
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, the usual metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // former 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, the broadcast address included
];

/// IPv6 networks no hook may reach, as (network, prefix length). The forms embedding an IPv4
/// address are judged by that address instead ([`embedded_ipv4`]).
const RESTRICTED_IPV6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    // Local-use NAT64: the operator's own translator, to any IPv4 address; refused whole.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    // Teredo: the IPv4 address inside is obfuscated and the relay is anyone's; refused whole.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48),     // benchmarking
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),     // segment routing identifiers
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),      // unique-local, AWS metadata fd00:ec2::254 included
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),     // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),     // former site-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),      // multicast
];

fn is_restricted_ipv4(address: Ipv4Addr) -> bool {
    let bits = u128::from(u32::from(address));
    RESTRICTED_IPV4.iter().any(|&(network, length)| in_network::<32>(bits, u128::from(u32::from(network)), length))
}

fn is_restricted_ipv6(address: Ipv6Addr) -> bool {
    let bits = u128::from(address);
    RESTRICTED_IPV6.iter().any(|&(network, length)| in_network::<128>(bits, u128::from(network), length))
        || embedded_ipv4(address).is_some_and(is_restricted_ipv4)
}

/// Whether the `WIDTH`-bit address `bits` shares the first `length` bits of `network`.
fn in_network<const WIDTH: u32>(bits: u128, network: u128, length: u8) -> bool {
    (bits ^ network).checked_shr(WIDTH - u32::from(length)).is_none_or(|differing| differing == 0)
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it.
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let from_pair = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match address.segments() {
        // Mapped ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(from_pair(high, low)),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from_pair(high, low)),
        // 6to4 2002:AABB:CCDD::/48.
        [0x2002, high, low, ..] => Some(from_pair(high, low)),
        // Deprecated compatible ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, high, low] => Some(from_pair(high, low)),
        _ => None,
    }
}

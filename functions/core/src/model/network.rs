//! Which network addresses webhooks may be sent to. Private, loopback, link-local,
//! unique-local, CGNAT, multicast, metadata, reserved and unspecified addresses are
//! refused (IPv4 embedded in IPv6 is judged by its IPv4 address) unless the installation
//! allows a range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// A range of addresses an installation allows: a CIDR range such as `10.0.0.0/8` or
/// `fd00::/8` (`ipnet` reads it and does the prefix arithmetic), or a bare address, which
/// is that one address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange(IpNet);

/// A range that does not read, named as it was written.
#[derive(Debug, thiserror::Error)]
#[error("`{range}` is not an address range (write it as 10.0.0.0/8 or fd00::/8)")]
pub struct InvalidRange {
    range: String,
    #[source]
    source: ipnet::AddrParseError,
}

impl FromStr for IpRange {
    type Err = InvalidRange;
    fn from_str(s: &str) -> Result<Self, InvalidRange> {
        let text = s.trim();
        text.parse::<IpNet>()
            .or_else(|e| text.parse::<IpAddr>().map(IpNet::from).map_err(|_| e))
            .map(Self)
            .map_err(|source| InvalidRange {
                range: s.to_owned(),
                source,
            })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }

    /// Both loopback ranges, which the local runner allows by default.
    pub fn loopback() -> Vec<IpRange> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    /// A comma-separated list (`10.1.0.0/16, ::1`); empty items are skipped.
    pub fn parse_list(s: &str) -> Result<Vec<IpRange>, InvalidRange> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect()
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    Metadata,
    SharedCgnat,
    UniqueLocal,
    Multicast,
    Broadcast,
    Reserved,
    Documentation,
}

impl AddressClass {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "a cloud metadata address",
            Self::SharedCgnat => "a carrier-grade NAT address",
            Self::UniqueLocal => "a unique-local address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Reserved => "a reserved address",
            Self::Documentation => "a documentation address",
        }
    }
}

/// The class that makes an address unfit as a webhook target, or `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let o = ip.octets();
    use AddressClass::*;
    Some(match o {
        [169, 254, 169, 254] | [169, 254, 170, 2] | [100, 100, 100, 200] => Metadata,
        [0, ..] => Unspecified,
        [127, ..] => Loopback,
        [10, ..] | [192, 168, ..] => Private,
        [172, b, ..] if (16..32).contains(&b) => Private,
        [169, 254, ..] => LinkLocal,
        [100, b, ..] if (64..128).contains(&b) => SharedCgnat,
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [198, 18 | 19, ..] => Reserved,
        [255, 255, 255, 255] => Broadcast,
        [a, ..] if (224..240).contains(&a) => Multicast,
        [a, ..] if a >= 240 => Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] => Metadata,
        [a, ..] if a & 0xffc0 == 0xfe80 => LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => Reserved,
        [a, ..] if a & 0xfe00 == 0xfc00 => UniqueLocal,
        [a, ..] if a & 0xff00 == 0xff00 => Multicast,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x2001, b, ..] if b < 0x200 => Reserved, // Teredo, benchmarking, ORCHID and other IETF blocks
        [0x0100, 0, 0, 0, ..] => Reserved,        // discard-only
        [0, ..] => Reserved,                      // the rest of ::/8
        _ => return None,
    })
}

/// The IPv4 address carried inside an IPv6 one: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(tail()),
        [0, 0, 0, 0, 0, 0, a, _] if a != 0 => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 1, ..] => Some(tail()),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// The installation's rule for webhook targets.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub allowed: Vec<IpRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is {}", .class.describe())]
pub struct RefusedAddress {
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl NetworkPolicy {
    pub fn allowing(allowed: Vec<IpRange>) -> Self {
        Self { allowed }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), RefusedAddress> {
        match classify(ip) {
            None => Ok(()),
            Some(_) if self.allowed.iter().any(|r| r.contains(ip)) => Ok(()),
            Some(class) => Err(RefusedAddress { ip, class }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<AddressClass> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_forbidden_class_is_caught() {
        use AddressClass::*;
        let cases = [
            ("0.0.0.0", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("224.0.0.1", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.5", Documentation),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fd00:ec2::254", Metadata),
            ("ff02::1", Multicast),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", Metadata),
            ("64:ff9b::192.168.0.1", Private),
            ("2002:0a00:0001::1", Private),
            ("2001:db8::1", Documentation),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn allowed_ranges_open_only_themselves() {
        let policy = NetworkPolicy::allowing(IpRange::loopback());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::1".parse().unwrap()).is_ok());
        let refused = policy.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(refused.class, AddressClass::Private);
        assert!(
            NetworkPolicy::default()
                .check("127.0.0.1".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn ranges_parse() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains("10.200.0.1".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        let r: IpRange = "172.16.0.0/12".parse().unwrap();
        assert!(r.contains("172.31.0.1".parse().unwrap()));
        assert!(!r.contains("172.32.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nope".parse::<IpRange>().is_err());
        assert_eq!(IpRange::parse_list("127.0.0.0/8, ::1").unwrap().len(), 2);
        let r: IpRange = "fd00::/8".parse().unwrap();
        assert!(r.contains("fd12::1".parse().unwrap()));
        assert!(!r.contains("fe80::1".parse().unwrap()));
        assert!(
            !r.contains("253.0.0.1".parse().unwrap()),
            "no range spans both families"
        );
    }

    /// Operator settings may name one address without a prefix: it is that address alone.
    #[test]
    fn a_bare_address_is_a_range_of_one() {
        let list = IpRange::parse_list("10.1.0.0/16, 192.168.1.7 ,::1,").unwrap();
        assert_eq!(
            list.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.1.0.0/16", "192.168.1.7/32", "::1/128"]
        );
        assert!(list[0].contains("10.1.255.255".parse().unwrap()));
        assert!(!list[0].contains("10.2.0.0".parse().unwrap()));
        assert!(list[1].contains("192.168.1.7".parse().unwrap()));
        assert!(!list[1].contains("192.168.1.8".parse().unwrap()));
        assert!(list[2].contains("::1".parse().unwrap()));
        assert!(!list[2].contains("::2".parse().unwrap()));
    }

    #[test]
    fn a_bad_range_is_named() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "nope",
            "10.0.0.0/8/8",
        ] {
            let e = IpRange::parse_list(&format!("127.0.0.0/8, {bad}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("`{bad}` is not an address range (write it as 10.0.0.0/8 or fd00::/8)")
            );
            assert!(std::error::Error::source(&e).is_some(), "{bad}");
        }
    }
}

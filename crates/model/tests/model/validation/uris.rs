//! The uri check: a table of hostile and public URIs with the verdict each must get.

use serde_json::json;
use webhooks_model::webhook::check_callback_uri;

use super::{PRIVATE_OK, RESELLER, hook_with, validate_as};

/// Hook URIs and why each is refused: `Public` ones are accepted, `Restricted(address)` ones name
/// (in whatever spelling) an address refused unless private targets are allowed, `Refused(cause)`
/// ones are refused whatever the configuration.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Public,
    Restricted(&'static str),
    Refused(&'static str),
}

use Verdict::{Public, Refused, Restricted};

const URIS: &[(&str, Verdict)] = &[
    ("http://hooks.example.com/a", Public),
    ("https://hooks.example.com:8443/a?b=c#d", Public),
    ("HTTPS://Hooks.Example.com/a", Public),
    ("http://localhost.example.com/a", Public),
    ("http://93.184.216.34/hook", Public),
    ("http://0x5db8d822/hook", Public),
    ("http://100.63.255.255/", Public),
    ("http://100.128.0.0/", Public),
    ("http://198.17.255.255/", Public),
    ("http://198.20.0.0/", Public),
    ("http://[2606:2800:220:1:248:1893:25c8:1946]/hook", Public),
    ("http://[2001:4860:4860::8888]/", Public),
    ("http://[2001:db9::1]/", Public),
    ("http://[3fff:1000::1]/", Public),
    ("http://[::ffff:93.184.216.34]/", Public),
    ("http://[64:ff9b::5db8:d822]/", Public),
    ("http://[2002:5db8:d822::1]/", Public),
    // Other spellings of 127.0.0.1, read as the WHATWG parser reads them.
    ("http://127.0.0.1:8080/a", Restricted("127.0.0.1")),
    ("http://2130706433/a", Restricted("127.0.0.1")),
    ("http://0x7f.0.0.1/a", Restricted("127.0.0.1")),
    ("http://0x7f000001/a", Restricted("127.0.0.1")),
    ("http://0177.0.0.1/a", Restricted("127.0.0.1")),
    ("http://127.1/a", Restricted("127.0.0.1")),
    ("http://127.0.0.1./a", Restricted("127.0.0.1")),
    ("http://%31%32%37.0.0.1/a", Restricted("127.0.0.1")),
    ("http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/a", Restricted("127.0.0.1")),
    // Every IPv4 range, at its edges.
    ("http://0.0.0.0/a", Restricted("0.0.0.0")),
    ("http://0.255.255.255/a", Restricted("0.255.255.255")),
    ("http://10.1.2.3/a", Restricted("10.1.2.3")),
    ("http://100.64.0.0/a", Restricted("100.64.0.0")),
    ("http://100.100.100.200/a", Restricted("100.100.100.200")),
    ("http://100.127.255.255/a", Restricted("100.127.255.255")),
    ("http://127.255.255.254/a", Restricted("127.255.255.254")),
    ("http://169.254.169.254/latest/meta-data/", Restricted("169.254.169.254")),
    ("http://172.16.0.1/a", Restricted("172.16.0.1")),
    ("http://172.31.255.255/a", Restricted("172.31.255.255")),
    ("http://192.0.0.8/a", Restricted("192.0.0.8")),
    ("http://192.0.2.1/a", Restricted("192.0.2.1")),
    ("http://192.88.99.1/a", Restricted("192.88.99.1")),
    ("http://192.168.1.10/a", Restricted("192.168.1.10")),
    ("http://198.18.0.0/a", Restricted("198.18.0.0")),
    ("http://198.19.255.255/a", Restricted("198.19.255.255")),
    ("http://198.51.100.7/a", Restricted("198.51.100.7")),
    ("http://203.0.113.9/a", Restricted("203.0.113.9")),
    ("http://224.0.0.1/a", Restricted("224.0.0.1")),
    ("http://239.255.255.250/a", Restricted("239.255.255.250")),
    ("http://240.0.0.1/a", Restricted("240.0.0.1")),
    ("http://255.255.255.255/a", Restricted("255.255.255.255")),
    // Every IPv6 range, and the IPv4 ones carried inside IPv6 addresses.
    ("http://[::]/a", Restricted("::")),
    ("http://[::1]/a", Restricted("::1")),
    ("http://[::ffff:127.0.0.1]/a", Restricted("::ffff:127.0.0.1")),
    ("http://[::ffff:a00:1]/a", Restricted("::ffff:10.0.0.1")),
    ("http://[::127.0.0.1]/a", Restricted("::7f00:1")),
    ("http://[::a9fe:a9fe]/a", Restricted("::a9fe:a9fe")),
    ("http://[64:ff9b::a9fe:a9fe]/a", Restricted("64:ff9b::a9fe:a9fe")),
    ("http://[64:ff9b::7f00:1]/a", Restricted("64:ff9b::7f00:1")),
    ("http://[64:ff9b:1::5db8:d822]/a", Restricted("64:ff9b:1::5db8:d822")),
    ("http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/a", Restricted("64:ff9b:1:ffff:ffff:ffff:ffff:ffff")),
    ("http://[100::1]/a", Restricted("100::1")),
    ("http://[2001::5db8:d822]/a", Restricted("2001::5db8:d822")),
    ("http://[2001:0:ffff:ffff::1]/a", Restricted("2001:0:ffff:ffff::1")),
    ("http://[2001:2::1]/a", Restricted("2001:2::1")),
    ("http://[2001:db8::1]/a", Restricted("2001:db8::1")),
    ("http://[2001:db8:ffff::1]/a", Restricted("2001:db8:ffff::1")),
    ("http://[3fff::1]/a", Restricted("3fff::1")),
    ("http://[3fff:fff:ffff::1]/a", Restricted("3fff:fff:ffff::1")),
    ("http://[5f00::1]/a", Restricted("5f00::1")),
    ("http://[2002:7f00:1::1]/a", Restricted("2002:7f00:1::1")),
    ("http://[2002:c0a8:101::1]/a", Restricted("2002:c0a8:101::1")),
    ("http://[fc00::1]/a", Restricted("fc00::1")),
    ("http://[fd00:ec2::254]/a", Restricted("fd00:ec2::254")),
    ("http://[fe80::1]/a", Restricted("fe80::1")),
    ("http://[febf::1]/a", Restricted("febf::1")),
    ("http://[fec0::1]/a", Restricted("fec0::1")),
    ("http://[ff02::1]/a", Restricted("ff02::1")),
    // Refused whatever the configuration.
    ("ftp://hooks.example.com/a", Refused("scheme 'ftp' is not http or https")),
    ("file:///etc/passwd", Refused("scheme 'file' is not http or https")),
    ("javascript:alert(1)", Refused("scheme 'javascript' is not http or https")),
    ("/relative/path", Refused("not an absolute URL: relative URL without a base")),
    ("hooks.example.com/a", Refused("not an absolute URL: relative URL without a base")),
    ("", Refused("not an absolute URL: relative URL without a base")),
    ("http:///a", Refused("is not written scheme://host")),
    ("http:/hooks.example.com/a", Refused("is not written scheme://host")),
    ("http:hooks.example.com/a", Refused("is not written scheme://host")),
    ("http://", Refused("not an absolute URL: empty host")),
    ("http:\\\\hooks.example.com\\a", Refused("contains whitespace, control characters or backslashes")),
    ("http://hooks.example.com\\@127.0.0.1/a", Refused("contains whitespace, control characters or backslashes")),
    ("http://[::1/a", Refused("not an absolute URL: invalid IPv6 address")),
    ("http://256.0.0.1/a", Refused("not an absolute URL: invalid IPv4 address")),
    ("http://1.2.3.4.5/a", Refused("not an absolute URL: invalid IPv4 address")),
    ("https://user:secret@hooks.example.com/a", Refused("carries credentials")),
    ("https://user@hooks.example.com/a", Refused("carries credentials")),
    ("https://hooks.example.com/a b", Refused("contains whitespace, control characters or backslashes")),
    (" https://hooks.example.com/a", Refused("contains whitespace, control characters or backslashes")),
    ("https://hooks.example.com/a\n", Refused("contains whitespace, control characters or backslashes")),
    ("https://localhost/a", Refused("host 'localhost' is blacklisted")),
    ("https://LOCALHOST./a", Refused("host 'localhost' is blacklisted")),
    ("http://api.localhost/a", Refused("host 'api.localhost' is blacklisted")),
];

#[test]
fn every_hostile_uri_is_refused_with_its_reason_and_public_ones_accepted() {
    for &(uri, verdict) in URIS {
        for caller in [RESELLER, PRIVATE_OK] {
            let result = validate_as(caller, hook_with(json!({"uri": uri})));
            let cause = match verdict {
                Public => None,
                Restricted(_) if caller.allow_private_targets => None,
                Restricted(address) => Some(format!("address {address} is not a public address")),
                Refused(cause) => Some(cause.to_owned()),
            };
            match (cause, result) {
                // Stored as the client wrote it.
                (None, Ok(document)) => assert_eq!(document.uri(), uri),
                (Some(cause), Err(errors)) => assert_eq!(
                    errors.into_json(),
                    json!({"uri": {"error": {"message": "invalid client URL", "cause": cause, "value": uri}}}),
                    "for {uri}"
                ),
                (cause, result) => panic!(
                    "{uri:?} (private allowed: {}): expected refusal {cause:?}, got {result:?}",
                    caller.allow_private_targets
                ),
            }
        }
    }
}

#[test]
fn the_uri_check_gives_the_normalized_url() {
    let url = check_callback_uri("http://0x7f.1:8080/a", true).expect("private targets allowed");
    assert_eq!(url.as_str(), "http://127.0.0.1:8080/a");
    assert!(check_callback_uri("http://10.0.0.1/", true).is_ok());
}

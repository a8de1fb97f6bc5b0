//! Kazoo's form encoding of payloads, and of GET callouts' URLs.

use super::*;

fn encode(value: Value) -> String {
    form::encode(&object(value))
}

#[test]
fn kazoos_examples_encode_identically() {
    assert_eq!(
        encode(json!({"foo": "bar", "fizz": "buzz", "arr": [1, 3, 5]})),
        "foo=bar&fizz=buzz&arr[]=1&arr[]=3&arr[]=5"
    );
    assert_eq!(
        encode(json!({"topkey": {"subkey1": "v1", "subkey2": {"k3": "v3"}}})),
        "topkey[subkey1]=v1&topkey[subkey2][k3]=v3"
    );
    assert_eq!(encode(json!({"url": "http://user:pass@host:port/"})), "url=http%3A%2F%2Fuser%3Apass%40host%3Aport%2F");
}

#[test]
fn values_keep_unreserved_characters_and_escape_the_rest() {
    assert_eq!(encode(json!({"v": "A-z_0.9~ +&=[]é"})), "v=A-z_0.9~+%2B%26%3D%5B%5D%C3%A9");
    assert_eq!(encode(json!({"t": true, "f": false, "n": 1.5, "i": -2})), "t=true&f=false&n=1.5&i=-2");
}

#[test]
fn empty_structures_and_nulls_leave_no_stray_separator() {
    assert_eq!(encode(json!({"a": 1, "b": {}, "c": 2})), "a=1&c=2");
    assert_eq!(encode(json!({"a": 1, "b": {}})), "a=1");
    assert_eq!(encode(json!({"b": {}, "a": 1})), "a=1");
    assert_eq!(encode(json!({"a": 1, "e": [], "c": 2})), "a=1&c=2");
    assert_eq!(encode(json!({"a": null, "b": 1, "c": null})), "b=1");
    assert_eq!(encode(json!({"a": {"x": null, "y": {}}, "b": [null, 2]})), "b[]=2");
    assert_eq!(encode(json!({})), "");
}

#[test]
fn keys_are_escaped_except_brackets_at_every_level() {
    assert_eq!(encode(json!({"a b&c=d": "x"})), "a+b%26c%3Dd=x");
    assert_eq!(encode(json!({"k[0]": "x"})), "k[0]=x");
    assert_eq!(encode(json!({"outer key": {"in/ner": {"é": 1}}})), "outer+key[in%2Fner][%C3%A9]=1");
    assert_eq!(encode(json!({"list#": ["a b"]})), "list%23[]=a+b");
}

#[test]
fn structures_inside_arrays_are_sent_as_json_text() {
    assert_eq!(encode(json!({"items": [{"k": "v"}, [1]]})), "items[]=%7B%22k%22%3A%22v%22%7D&items[]=%5B1%5D");
}

#[test]
fn get_urls_join_an_existing_query_string_with_an_ampersand() {
    let payload = object(json!({"a": "1", "b": "x y"}));
    let cases = [
        ("https://h.example.com/p", "https://h.example.com/p?a=1&b=x+y"),
        ("https://h.example.com/p?token=abc", "https://h.example.com/p?token=abc&a=1&b=x+y"),
        ("https://h.example.com/p?", "https://h.example.com/p?a=1&b=x+y"),
        ("https://h.example.com/p?token=abc&", "https://h.example.com/p?token=abc&a=1&b=x+y"),
        ("https://h.example.com/p#frag", "https://h.example.com/p?a=1&b=x+y#frag"),
        ("https://h.example.com/p?t=1#frag", "https://h.example.com/p?t=1&a=1&b=x+y#frag"),
    ];
    for (uri, expected) in cases {
        assert_eq!(form::url_with_query(uri, &payload), expected, "{uri}");
    }
    assert_eq!(form::url_with_query("https://h.example.com/p", &Map::new()), "https://h.example.com/p");
}

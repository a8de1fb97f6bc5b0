//! AMQP topic-exchange matching, as RabbitMQ does it: keys and patterns are words separated by
//! `.`; `*` stands for exactly one word, `#` for zero or more words.

/// Whether a message with `routing_key` matches the binding `pattern` of a topic exchange.
///
/// Used by the in-process twin; public so a binding can be checked without a broker.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern = words(pattern);
    let key = words(routing_key);
    // matched[j]: the pattern words seen so far match the first j key words. Dynamic programming
    // rather than backtracking keeps patterns with several `#` linear in the key length.
    let mut matched = vec![false; key.len() + 1];
    matched[0] = true;
    for word in pattern {
        let mut next = vec![false; key.len() + 1];
        for j in 0..=key.len() {
            next[j] = match word {
                // Zero words (as matched before), or one more word on top of a match of `#`.
                "#" => matched[j] || (j > 0 && next[j - 1]),
                "*" => j > 0 && matched[j - 1],
                literal => j > 0 && matched[j - 1] && key[j - 1] == literal,
            };
        }
        matched = next;
    }
    matched[key.len()]
}

/// The words of a key or pattern. As in RabbitMQ, the empty string has no words at all (so `*`
/// does not match it), while `a.` has two, the second empty.
fn words(text: &str) -> Vec<&str> {
    if text.is_empty() { Vec::new() } else { text.split('.').collect() }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_match_as_rabbitmq_matches_them() {
        let table: &[(&str, &str, bool)] = &[
            // Literals.
            ("call.CHANNEL_CREATE.abc", "call.CHANNEL_CREATE.abc", true),
            ("call.CHANNEL_CREATE.abc", "call.CHANNEL_CREATE.abd", false),
            ("Call.x", "call.x", false),
            // `*`: exactly one word.
            ("call.CHANNEL_CREATE.*", "call.CHANNEL_CREATE.4f9c%40203%2E0", true),
            ("call.CHANNEL_CREATE.*", "call.CHANNEL_CREATE", false),
            ("call.CHANNEL_CREATE.*", "call.CHANNEL_CREATE.a.b", false),
            ("call.CHANNEL_CREATE.*", "call.CHANNEL_ANSWER.a", false),
            ("*", "word", true),
            ("*", "two.words", false),
            ("*.*", "one", false),
            ("a.*.b", "a..b", true),
            ("doc_edited.*.user.*", "doc_edited.account%2F3a%2F4b.user.123", true),
            ("*.webhooks.webhook.*", "doc_deleted.webhooks.webhook.abc", true),
            ("*.webhooks.webhook.*", "doc_deleted.webhooks.account.abc", false),
            // `#`: zero or more words.
            ("#", "", true),
            ("#", "a.b.c", true),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b.a", false),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("#.c", "a.b.c.d", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.b.b.c", true),
            ("a.#.c", "a.b.b", false),
            ("#.#", "", true),
            ("#.#", "a.b", true),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a.b.c.d", true),
            // The empty key has no words.
            ("#.*", "", false),
            ("*", "", false),
            ("", "", true),
            ("", "a", false),
            ("a.*", "a.", true),
            ("#.*.#.*", "a", false),
            ("#.*.#.*", "a.b", true),
            // Literal words are whole words, not prefixes.
            ("notifications.voicemail.new", "notifications.voicemail.newer", false),
        ];
        for (pattern, key, expected) in table {
            assert_eq!(topic_matches(pattern, key), *expected, "pattern {pattern:?} against key {key:?}");
        }
    }
}

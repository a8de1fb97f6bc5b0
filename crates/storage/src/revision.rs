//! Document revisions in Kazoo's `_rev` shape.

/// A revision `<n>-<32 hex>`: `n` counts writes, the tag tells apart documents and writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revision {
    /// How many writes the document has seen.
    pub(crate) number: i64,
    /// 32 lowercase hex characters.
    pub(crate) tag: String,
}

impl Revision {
    /// The revision of a newly created document.
    pub(crate) fn first() -> Self {
        Self { number: 1, tag: fresh_tag() }
    }

    /// Parses `<n>-<tag>`; `None` for anything else (such a revision can never match).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (number, tag) = text.split_once('-')?;
        let number = number.parse::<i64>().ok()?;
        Some(Self { number, tag: tag.to_owned() })
    }

    /// The text form, as clients see it.
    pub(crate) fn render(number: i64, tag: &str) -> String {
        format!("{number}-{tag}")
    }
}

/// A fresh random revision tag.
pub(crate) fn fresh_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_renders_and_rejects_other_shapes() {
        let first = Revision::first();
        let text = Revision::render(first.number, &first.tag);
        assert_eq!(Revision::parse(&text), Some(first));
        assert_eq!(Revision::parse("nope"), None);
        assert_eq!(Revision::parse("x-abc"), None);
    }
}

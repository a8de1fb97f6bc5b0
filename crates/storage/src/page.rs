//! Pagination requests, pages and the opaque start keys of listings.

/// Which slice of a listing to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Where the page starts (inclusive): a `next_start_key` from an earlier page.
    pub start_key: Option<String>,
    /// The page length; `None` returns everything from the start key on. Zero counts as one.
    pub page_size: Option<usize>,
    /// Oldest/lowest first instead of the default newest/highest first.
    pub ascending: bool,
}

impl PageRequest {
    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub(crate) fn fetch_limit(&self) -> Option<i64> {
        self.page_size.map(|size| i64::try_from(size.max(1)).unwrap_or(i64::MAX - 1) + 1)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// The start key of the next page; `None` on the last page.
    pub next_start_key: Option<String>,
}

/// Cuts the extra row fetched by [`PageRequest::fetch_limit`] off `rows`, returning the page and
/// the key of the first row of the next page.
pub(crate) fn split_page<R>(
    mut rows: Vec<R>,
    page: &PageRequest,
    key: impl Fn(&R) -> String,
) -> (Vec<R>, Option<String>) {
    let Some(size) = page.page_size.map(|size| size.max(1)) else {
        return (rows, None);
    };
    if rows.len() <= size {
        return (rows, None);
    }
    let rest = rows.split_off(size);
    let next = rest.first().map(key);
    (rows, next)
}

impl PageRequest {
    /// The page of `ascending` (items sorted by their key, lowest first) this request names, as
    /// the store's own listings would return it: same order, start key and next key.
    pub fn slice<'a, T>(&self, ascending: &'a [T], key: impl Fn(&T) -> &str) -> Page<&'a T> {
        let start = self.start_key.as_deref();
        let rows: Vec<&T> = if self.ascending {
            let from = start.map_or(0, |start| ascending.partition_point(|item| key(item) < start));
            ascending[from..].iter().take(self.fetch_count()).collect()
        } else {
            let to = start.map_or(ascending.len(), |start| ascending.partition_point(|item| key(item) <= start));
            ascending[..to].iter().rev().take(self.fetch_count()).collect()
        };
        let (items, next_start_key) = split_page(rows, self, |item| key(item).to_owned());
        Page { items, next_start_key }
    }

    /// [`PageRequest::fetch_limit`] as a count of items.
    fn fetch_count(&self) -> usize {
        self.page_size.map_or(usize::MAX, |size| size.max(1).saturating_add(1))
    }
}

/// The start key of an attempt: `<created>-<id>`, both parts needed because creation times repeat.
pub(crate) fn attempt_key(created: i64, id: &str) -> String {
    format!("{created}-{id}")
}

/// Parses an attempt start key; `None` when this store did not issue it.
pub(crate) fn parse_attempt_key(key: &str) -> Option<(i64, String)> {
    let (created, id) = key.split_once('-')?;
    let created = created.parse::<i64>().ok()?;
    let is_id = id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    is_id.then(|| (created, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_keys_round_trip_and_reject_foreign_shapes() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_attempt_key(&attempt_key(63_877_219_205, id)), Some((63_877_219_205, id.to_owned())));
        assert_eq!(parse_attempt_key("63877219205"), None);
        assert_eq!(parse_attempt_key("x-0123456789abcdef0123456789abcdef"), None);
        assert_eq!(parse_attempt_key("1-0123456789ABCDEF0123456789ABCDEF"), None);
    }

    #[test]
    fn a_page_keeps_the_first_extra_row_as_the_next_key() {
        let page = PageRequest { start_key: None, page_size: Some(2), ascending: false };
        assert_eq!(split_page(vec![1, 2, 3, 4], &page, ToString::to_string), (vec![1, 2], Some("3".into())));
        assert_eq!(split_page(vec![1, 2], &page, ToString::to_string), (vec![1, 2], None));
        let everything = PageRequest::default();
        assert_eq!(split_page(vec![1, 2, 3], &everything, ToString::to_string), (vec![1, 2, 3], None));
    }

    fn request(start_key: Option<&str>, page_size: Option<usize>, ascending: bool) -> PageRequest {
        PageRequest { start_key: start_key.map(str::to_owned), page_size, ascending }
    }

    #[test]
    fn in_memory_pages_follow_the_listing_rules() {
        let keys = ["a", "b", "c", "d", "e"];
        let slice = |request: PageRequest| {
            let page = request.slice(&keys, |key| key);
            (page.items.into_iter().copied().collect::<Vec<_>>(), page.next_start_key)
        };
        assert_eq!(slice(request(None, Some(2), false)), (vec!["e", "d"], Some("c".to_owned())));
        assert_eq!(slice(request(Some("c"), Some(2), false)), (vec!["c", "b"], Some("a".to_owned())));
        assert_eq!(slice(request(Some("a"), Some(2), false)), (vec!["a"], None));
        assert_eq!(slice(request(None, Some(2), true)), (vec!["a", "b"], Some("c".to_owned())));
        assert_eq!(slice(request(Some("bb"), None, true)), (vec!["c", "d", "e"], None));
        assert_eq!(slice(request(Some("bb"), Some(5), false)), (vec!["b", "a"], None));
        assert_eq!(slice(request(None, Some(0), false)), (vec!["e"], Some("d".to_owned())));
        assert_eq!(slice(request(None, None, false)), (vec!["e", "d", "c", "b", "a"], None));
    }
}

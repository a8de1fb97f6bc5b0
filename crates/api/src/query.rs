//! Listing query parameters: pagination (`page_size`, `start_key`, `paginate`, `ascending`) and
//! Crossbar's `filter_*` family, applied to the full stored document.

use serde_json::Value;
use webhooks_storage::PageRequest;

use crate::crossbar::ApiError;

/// The query string of a request, as ordered pairs.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(query: &str) -> Self {
        Self(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The pagination the client asked for; `default_page_size` when it named none.
    pub fn page(&self, default_page_size: usize) -> Result<PageRequest, ApiError> {
        let paginate = self.get("paginate") != Some("false");
        let page_size = match self.get("page_size") {
            None => default_page_size,
            Some(text) => match text.trim().parse::<i64>() {
                Ok(size) if size >= 1 => usize::try_from(size).unwrap_or(usize::MAX),
                Ok(_) => return Err(ApiError::FaultyRequest("page size must be at least 1")),
                Err(_) => return Err(ApiError::FaultyRequest("invalid page size")),
            },
        };
        let ascending = self.get("ascending") == Some("true") || self.get("descending") == Some("false");
        Ok(PageRequest {
            start_key: self.get("start_key").filter(|key| !key.is_empty()).map(str::to_owned),
            page_size: paginate.then_some(page_size),
            ascending,
        })
    }

    /// The document filters of the query.
    pub fn filters(&self) -> Filters {
        let mut filters = Vec::new();
        for (key, value) in &self.0 {
            let filter = if let Some(path) = key.strip_prefix("filter_not_") {
                Filter::NotEqual(path.to_owned(), accepted_values(value))
            } else if let Some(path) = key.strip_prefix("filter_") {
                Filter::Equal(path.to_owned(), accepted_values(value))
            } else {
                match key.as_str() {
                    "has_key" => Filter::HasKey(value.clone()),
                    "key_missing" => Filter::KeyMissing(value.clone()),
                    "has_value" => Filter::HasValue(value.clone()),
                    "value_missing" => Filter::ValueMissing(value.clone()),
                    "created_from" | "created_to" | "modified_from" | "modified_to" => {
                        let Ok(bound) = value.trim().parse::<i64>() else { continue };
                        let field = if key.starts_with("created") { "pvt_created" } else { "pvt_modified" };
                        if key.ends_with("_from") {
                            Filter::AtLeast(field, bound)
                        } else {
                            Filter::AtMost(field, bound)
                        }
                    }
                    _ => continue,
                }
            };
            filters.push(filter);
        }
        Filters(filters)
    }
}

/// A filter value is one string, or a JSON array meaning "any of".
fn accepted_values(value: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(items)) => items.iter().map(string_form).collect(),
        _ => vec![value.to_owned()],
    }
}

/// The string form a filter compares against.
fn string_form(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
enum Filter {
    Equal(String, Vec<String>),
    NotEqual(String, Vec<String>),
    HasKey(String),
    KeyMissing(String),
    HasValue(String),
    ValueMissing(String),
    AtLeast(&'static str, i64),
    AtMost(&'static str, i64),
}

/// The filters of one listing request; all must pass.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// True when `document` passes every filter. A filter that cannot be evaluated excludes it.
    pub fn accept(&self, document: &Value) -> bool {
        self.0.iter().all(|filter| match filter {
            Filter::Equal(path, values) => {
                lookup(document, path).is_some_and(|found| values.contains(&string_form(found)))
            }
            Filter::NotEqual(path, values) => {
                lookup(document, path).is_none_or(|found| !values.contains(&string_form(found)))
            }
            Filter::HasKey(path) => lookup(document, path).is_some(),
            Filter::KeyMissing(path) => lookup(document, path).is_none(),
            Filter::HasValue(path) => lookup(document, path).is_some_and(|found| !is_empty(found)),
            Filter::ValueMissing(path) => lookup(document, path).is_none_or(is_empty),
            Filter::AtLeast(field, bound) => {
                document.get(*field).and_then(Value::as_i64).is_some_and(|value| value >= *bound)
            }
            Filter::AtMost(field, bound) => {
                document.get(*field).and_then(Value::as_i64).is_some_and(|value| value <= *bound)
            }
        })
    }

    /// True when no filter was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Follows a dotted path (`custom_data.type`) into a document.
fn lookup<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(document, |value, key| value.get(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filters(query: &str) -> Filters {
        QueryParams::parse(query).filters()
    }

    #[test]
    fn equality_filters_compare_string_forms_along_dotted_paths() {
        let doc = json!({"hook": "object", "retries": 2, "custom_data": {"type": "user"}});
        assert!(filters("filter_hook=object").accept(&doc));
        assert!(filters("filter_retries=2").accept(&doc));
        assert!(filters("filter_custom_data.type=user").accept(&doc));
        assert!(!filters("filter_custom_data.type=device").accept(&doc));
        assert!(filters("filter_hook=%5B%22sms%22%2C%22object%22%5D").accept(&doc));
        assert!(!filters("filter_not_hook=object").accept(&doc));
        assert!(filters("filter_not_missing=x").accept(&doc));
        assert!(!filters("filter_missing=x").accept(&doc));
    }

    #[test]
    fn key_and_value_presence_filters() {
        let doc = json!({"name": "", "uri": "https://a.example"});
        assert!(filters("has_key=name").accept(&doc));
        assert!(!filters("has_value=name").accept(&doc));
        assert!(filters("value_missing=name").accept(&doc));
        assert!(filters("key_missing=group").accept(&doc));
        assert!(!filters("key_missing=uri").accept(&doc));
    }

    #[test]
    fn time_bounds_are_inclusive() {
        let doc = json!({"pvt_created": 100, "pvt_modified": 200});
        assert!(filters("created_from=100&created_to=100").accept(&doc));
        assert!(!filters("created_from=101").accept(&doc));
        assert!(filters("modified_to=200").accept(&doc));
        assert!(!filters("modified_to=199").accept(&doc));
    }

    #[test]
    fn page_size_must_be_a_positive_integer() {
        assert!(matches!(QueryParams::parse("page_size=0").page(50), Err(ApiError::FaultyRequest(_))));
        assert!(matches!(QueryParams::parse("page_size=x").page(50), Err(ApiError::FaultyRequest(_))));
        let page = QueryParams::parse("page_size=5&start_key=k&ascending=true").page(50).expect("valid");
        assert_eq!((page.page_size, page.start_key.as_deref(), page.ascending), (Some(5), Some("k"), true));
        let everything = QueryParams::parse("paginate=false").page(50).expect("valid");
        assert_eq!(everything.page_size, None);
        assert!(!QueryParams::parse("").page(50).expect("valid").ascending);
    }
}

//! Pagination as AWS does it: an opaque nextToken that resumes after the last item
//! returned, and maxResults bounded per operation.

use crate::error::ApiError;
use base64::Engine;
use serde_json::Value;

pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// The page size and the key to resume after, from `maxResults` and `nextToken`, for
/// handlers that page straight out of the store.
pub fn page_params(
    input: &Value,
    default: usize,
    limit: usize,
    error_code: &str,
) -> Result<(usize, Option<String>), ApiError> {
    let max = input.get("maxResults").and_then(Value::as_i64);
    let token = input.get("nextToken").and_then(Value::as_str);
    params(max, token, default, limit, error_code)
}

/// [`page_params`] for a typed input's `maxResults` and `nextToken` members.
pub fn params(
    max_results: Option<i64>,
    next_token: Option<&str>,
    default: usize,
    limit: usize,
    error_code: &str,
) -> Result<(usize, Option<String>), ApiError> {
    let max = match max_results {
        None => default,
        Some(n) if n >= 1 && n as usize <= limit => n as usize,
        Some(_) => {
            return Err(ApiError::client(
                error_code,
                format!("maxResults must be between 1 and {limit}."),
            ))
        }
    };
    let after = match next_token {
        None | Some("") => None,
        Some(t) => Some(
            decode_token(t).ok_or_else(|| ApiError::client(error_code, "Invalid nextToken."))?,
        ),
    };
    Ok((max, after))
}

/// Page `items` (already sorted by `key`). `max_results` comes from the request;
/// `default` applies when it is absent and `limit` is the largest accepted value.
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    input: &Value,
    default: usize,
    limit: usize,
    error_code: &str,
) -> Result<Page<T>, ApiError> {
    let (max, after) = page_params(input, default, limit, error_code)?;
    Ok(page_after(items, key, max, after))
}

/// [`paginate`] with the page size and resume key already read ([`params`]).
pub fn page_after<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    max: usize,
    after: Option<String>,
) -> Page<T> {
    let mut iter = items
        .into_iter()
        .filter(|it| after.as_deref().is_none_or(|a| key(it).as_str() > a))
        .peekable();
    let mut out = Vec::with_capacity(max.min(128));
    while out.len() < max {
        match iter.next() {
            Some(it) => out.push(it),
            None => break,
        }
    }
    let next_token = if iter.peek().is_some() {
        out.last().map(|it| encode_token(&key(it)))
    } else {
        None
    };
    Page {
        items: out,
        next_token,
    }
}

pub fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

pub fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn pages_through_everything_once() {
        let items: Vec<String> = (0..25).map(|i| format!("k{i:03}")).collect();
        let mut seen = vec![];
        let mut token: Option<String> = None;
        loop {
            let input = json!({"maxResults": 10, "nextToken": token});
            let p = paginate(items.clone(), |s| s.clone(), &input, 100, 100, "X").unwrap();
            seen.extend(p.items);
            match p.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }
    #[test]
    fn rejects_out_of_range() {
        assert!(paginate(
            vec![1],
            |i| i.to_string(),
            &json!({"maxResults": 0}),
            10,
            100,
            "X"
        )
        .is_err());
        assert!(paginate(
            vec![1],
            |i| i.to_string(),
            &json!({"maxResults": 101}),
            10,
            100,
            "X"
        )
        .is_err());
        assert!(paginate(
            vec![1],
            |i| i.to_string(),
            &json!({"nextToken": "!!"}),
            10,
            100,
            "X"
        )
        .is_err());
    }
}

//! Key and filter validation, done before any I/O.

use super::error::KvError;

/// Longest key (and filter) accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// What a key may contain, for error messages.
pub(super) const KEY_RULES: &str = "keys are one or more `.`-separated tokens of ASCII letters, digits, \
`_`, `-`, `=` and `/`, at most 1024 bytes";

/// What a filter may contain, for error messages.
const FILTER_RULES: &str = "filters are `.`-separated tokens, each a key token (ASCII letters, \
digits, `_`, `-`, `=`, `/`), `*` (exactly one token) or, as the last token only, `>` (one or \
more tokens); e.g. `orders.*`, `orders.>`, `>`";

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '/')
}

/// Why `text` is not a well-formed `.`-separated token list, if it is not.
/// `wildcards` allows `*` tokens and a final `>` token.
fn token_problem(text: &str, wildcards: bool) -> Option<String> {
    if text.is_empty() {
        return Some("it is empty".to_owned());
    }
    if text.len() > MAX_KEY_LEN {
        return Some(format!(
            "it is {} bytes long, over the limit of {MAX_KEY_LEN}",
            text.len()
        ));
    }
    if text.starts_with('.') {
        return Some("it starts with `.` (an empty first token)".to_owned());
    }
    if text.ends_with('.') {
        return Some("it ends with `.` (an empty last token)".to_owned());
    }
    if let Some(at) = text.find("..") {
        return Some(format!("it has an empty token (`..` at byte {at})"));
    }
    let tokens: Vec<&str> = text.split('.').collect();
    let count = tokens.len();
    for (index, token) in tokens.into_iter().enumerate() {
        if wildcards && token == "*" {
            continue;
        }
        if wildcards && token == ">" {
            if index + 1 == count {
                continue;
            }
            return Some("`>` is only allowed as the last token".to_owned());
        }
        if let Some(c) = token.chars().find(|&c| !is_token_char(c)) {
            let what = match c {
                '*' | '>' if wildcards => {
                    format!("wildcard `{c}` must be a whole token (`a.*`, not `a*`)")
                }
                '*' | '>' => format!(
                    "wildcard `{c}` is not allowed in a key (use `keys` or `watch` with a filter to match many keys)"
                ),
                c if c.is_whitespace() => format!("whitespace {c:?} is not allowed"),
                c => format!("character {c:?} is not allowed"),
            };
            return Some(format!("{what} (in token `{token}`)"));
        }
    }
    None
}

pub(super) fn validate_key(key: &str) -> Result<(), KvError> {
    match token_problem(key, false) {
        None => Ok(()),
        Some(problem) => Err(KvError::InvalidKey {
            key: key.to_owned(),
            reason: format!("{problem}; {KEY_RULES}"),
        }),
    }
}

pub(super) fn validate_filter(filter: &str) -> Result<(), KvError> {
    match token_problem(filter, true) {
        None => Ok(()),
        Some(problem) => Err(KvError::InvalidFilter {
            filter: filter.to_owned(),
            reason: format!("{problem}; {FILTER_RULES}"),
        }),
    }
}

//! Rust names for wire names: words, `snake_case` fields, `PascalCase`
//! types and variants, raw or suffixed keywords, and unique picks.

use std::collections::BTreeSet;

use proc_macro2::{Ident, Span};

/// Type names the generated code spells without a path.
pub(super) const RESERVED: &[&str] = &[
    "String", "Option", "Vec", "Some", "None", "Result", "Ok", "Err", "Box", "bool", "char", "str",
    "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128",
    "usize",
];

/// Splits a wire name into ASCII words (`expiresAtMs` -> `expires`, `At`, `Ms`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !current.is_empty() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push(std::mem::take(&mut current));
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub(super) fn snake_case(name: &str) -> String {
    let snake = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    if snake.is_empty() {
        "field".to_owned()
    } else if snake.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{snake}")
    } else {
        snake
    }
}

pub(super) fn pascal_case(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect()
}

/// A Rust identifier for `text`: plain, raw (`r#type`) for keywords that
/// allow it, else with a trailing `_` (`self_`).
pub(super) fn make_ident(text: &str) -> Ident {
    if let Ok(ident) = syn::parse_str::<Ident>(text) {
        return ident;
    }
    if let Ok(ident) = syn::parse_str::<Ident>(&format!("r#{text}")) {
        return ident;
    }
    match syn::parse_str::<Ident>(&format!("{text}_")) {
        Ok(ident) => ident,
        Err(_) => Ident::new("field_", Span::call_site()),
    }
}

/// The name serde uses for an identifier (without `r#`).
pub(super) fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    match text.strip_prefix("r#") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// Picks a unique identifier: `base`, then `base{sep}2`, `base{sep}3`, ...
pub(super) fn unique_ident(base: &str, sep: &str, used: &mut BTreeSet<String>) -> Ident {
    let mut n = 1u32;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{sep}{n}")
        };
        let ident = make_ident(&candidate);
        if used.insert(unraw(&ident)) {
            return ident;
        }
        n += 1;
    }
}

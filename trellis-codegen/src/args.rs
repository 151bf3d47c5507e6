//! Parsing of the DSL's attribute arguments, e.g.
//! `#[kv(purpose = "...", schema = Item, history = 4)]`.
//!
//! Every argument keeps its span. [`Args`] hands values out by key and,
//! in [`Args::finish`], reports each key nobody asked for, naming the keys
//! that are accepted.

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Ident, LitBool, LitInt, LitStr, Token, bracketed, parenthesized};

use crate::errors::Errors;

/// One attribute value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `"text"`.
    Str(LitStr),
    /// An integer literal, possibly negated.
    Int {
        /// The literal.
        lit: LitInt,
        /// The span of the `-` when the value is negative.
        minus: Option<Span>,
    },
    /// `true` / `false`.
    Bool(LitBool),
    /// A path such as `Item` or `READ`.
    Path(syn::Path),
    /// `[a, b, c]`.
    Array(Span, Vec<Value>),
}

impl Value {
    /// The value's span.
    pub fn span(&self) -> Span {
        match self {
            Value::Str(l) => l.span(),
            Value::Int { lit, .. } => lit.span(),
            Value::Bool(b) => b.span,
            Value::Path(p) => p.span(),
            Value::Array(span, _) => *span,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int { .. } => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Path(_) => "a name",
            Value::Array(..) => "a list",
        }
    }
}

impl Parse for Value {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let look = input.lookahead1();
        // `-` first: syn's `LitInt` also accepts `-1` (minus included in
        // its digits), which `base10_parse::<u64>` would then reject with
        // an unhelpful "invalid digit" error.
        if look.peek(LitStr) {
            Ok(Value::Str(input.parse()?))
        } else if look.peek(Token![-]) {
            let minus = input.parse::<Token![-]>()?;
            Ok(Value::Int {
                lit: input.parse()?,
                minus: Some(minus.span),
            })
        } else if look.peek(LitInt) {
            let lit: LitInt = input.parse()?;
            let minus = lit.base10_digits().starts_with('-').then(|| lit.span());
            Ok(Value::Int { lit, minus })
        } else if look.peek(LitBool) {
            Ok(Value::Bool(input.parse()?))
        } else if look.peek(syn::token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let items = Punctuated::<Value, Token![,]>::parse_terminated(&content)?;
            Ok(Value::Array(
                bracket.span.join(),
                items.into_iter().collect(),
            ))
        } else if look.peek(Ident)
            || look.peek(Token![::])
            || look.peek(Token![crate])
            || look.peek(Token![self])
            || look.peek(Token![super])
        {
            Ok(Value::Path(input.parse()?))
        } else {
            Err(look.error())
        }
    }
}

/// One argument: `"positional"`, `key = value`, `key(nested, ...)` or `key`.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A bare value (only string literals are positional).
    Positional(Value),
    /// `key = value`.
    Assign(Ident, Value),
    /// `key(...)`.
    List(Ident, Vec<Arg>),
    /// `key` alone.
    Flag(Ident),
}

impl Arg {
    fn key(&self) -> Option<&Ident> {
        match self {
            Arg::Positional(_) => None,
            Arg::Assign(k, _) | Arg::List(k, _) | Arg::Flag(k) => Some(k),
        }
    }

    fn span(&self) -> Span {
        match self {
            Arg::Positional(v) => v.span(),
            Arg::Assign(k, _) | Arg::List(k, _) | Arg::Flag(k) => k.span(),
        }
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(Arg::Positional(input.parse()?));
        }
        let key = Ident::parse_any(input)?;
        if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Ok(Arg::Assign(key, input.parse()?))
        } else if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            let args = Punctuated::<Arg, Token![,]>::parse_terminated(&content)?;
            Ok(Arg::List(key, args.into_iter().collect()))
        } else {
            Ok(Arg::Flag(key))
        }
    }
}

/// Parses the arguments of an attribute (`#[name(args)]` or `#[name]`).
pub fn parse_attr_args(attr: &syn::Attribute) -> syn::Result<Vec<Arg>> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(Vec::new()),
        syn::Meta::List(list) => {
            let args = list.parse_args_with(Punctuated::<Arg, Token![,]>::parse_terminated)?;
            Ok(args.into_iter().collect())
        }
        syn::Meta::NameValue(nv) => Err(syn::Error::new(
            nv.span(),
            format!(
                "write `#[{}(...)]` with parentheses, not `= value`",
                attr_name(attr)
            ),
        )),
    }
}

/// Whether `attr` is spelled `#[trellis::<name>]` (matched literally: a
/// build script cannot resolve renamed imports).
pub fn is_trellis_attr(attr: &syn::Attribute, name: &str) -> bool {
    let mut segments = attr.path().segments.iter();
    matches!(
        (segments.next(), segments.next(), segments.next()),
        (Some(first), Some(second), None) if first.ident == "trellis" && second.ident == name
    )
}

/// The attribute's last path segment as text.
pub fn attr_name(attr: &syn::Attribute) -> String {
    attr.path()
        .segments
        .last()
        .map(|s| s.ident.unraw().to_string())
        .unwrap_or_default()
}

/// Arguments of one attribute, handed out by key.
pub struct Args<'e> {
    what: String,
    span: Span,
    allowed: &'static [&'static str],
    args: Vec<Option<Arg>>,
    errors: &'e mut Errors,
}

impl<'e> Args<'e> {
    /// Wraps `args` of the attribute described by `what` (e.g. `#[kv(...)]`).
    pub fn new(
        what: impl Into<String>,
        span: Span,
        allowed: &'static [&'static str],
        args: Vec<Arg>,
        errors: &'e mut Errors,
    ) -> Self {
        Args {
            what: what.into(),
            span,
            allowed,
            args: args.into_iter().map(Some).collect(),
            errors,
        }
    }

    /// The error sink.
    pub fn errors(&mut self) -> &mut Errors {
        self.errors
    }

    /// The span of the whole attribute.
    pub fn span(&self) -> Span {
        self.span
    }

    fn take(&mut self, key: &str) -> Option<Arg> {
        let mut found = None;
        for slot in &mut self.args {
            if slot
                .as_ref()
                .and_then(Arg::key)
                .is_some_and(|k| k.unraw() == key)
            {
                let arg = slot.take();
                if let (Some(first), Some(dup)) = (&found, &arg) {
                    let _: &Arg = first;
                    self.errors.push(syn::Error::new(
                        dup.span(),
                        format!("`{key}` is given twice in {}; keep one", self.what),
                    ));
                } else {
                    found = arg;
                }
            }
        }
        found
    }

    /// The first positional string (e.g. the surface name).
    pub fn positional_str(&mut self) -> Option<LitStr> {
        for slot in &mut self.args {
            if let Some(Arg::Positional(Value::Str(_))) = slot
                && let Some(Arg::Positional(Value::Str(s))) = slot.take()
            {
                return Some(s);
            }
        }
        None
    }

    /// `key = value` for any value.
    pub fn value(&mut self, key: &str) -> Option<(Ident, Value)> {
        match self.take(key)? {
            Arg::Assign(k, v) => Some((k, v)),
            Arg::Flag(k) => {
                self.errors.push(syn::Error::new(
                    k.span(),
                    format!(
                        "`{key}` needs a value in {}: write `{key} = ...`",
                        self.what
                    ),
                ));
                None
            }
            Arg::List(k, _) => {
                self.errors.push(syn::Error::new(
                    k.span(),
                    format!(
                        "`{key}` takes a value in {}: write `{key} = ...`, not `{key}(...)`",
                        self.what
                    ),
                ));
                None
            }
            Arg::Positional(_) => None,
        }
    }

    fn mismatch(&mut self, key: &str, value: &Value, expected: &str) {
        self.errors.push(syn::Error::new(
            value.span(),
            format!(
                "`{key}` in {} must be {expected}, found {}",
                self.what,
                value.describe()
            ),
        ));
    }

    /// `key = "text"`.
    pub fn str(&mut self, key: &str) -> Option<LitStr> {
        let (_, v) = self.value(key)?;
        match v {
            Value::Str(s) => Some(s),
            other => {
                self.mismatch(key, &other, "a string literal like `\"...\"`");
                None
            }
        }
    }

    /// `key = some::path`.
    pub fn path(&mut self, key: &str) -> Option<syn::Path> {
        let (_, v) = self.value(key)?;
        match v {
            Value::Path(p) => Some(p),
            other => {
                self.mismatch(key, &other, "a path like `crate::documents`");
                None
            }
        }
    }

    /// `key = 123` as a non-negative integer (underscores allowed).
    pub fn uint(&mut self, key: &str) -> Option<(u64, Span)> {
        let (_, v) = self.value(key)?;
        match v {
            Value::Int { lit, minus: None } => match lit.base10_parse::<u64>() {
                Ok(n) => Some((n, lit.span())),
                Err(e) => {
                    self.errors.push(e);
                    None
                }
            },
            Value::Int {
                lit,
                minus: Some(minus),
            } => {
                let hint = if key.ends_with("ttl_ms") {
                    format!("; write `{key} = 0` (the default) for no expiry")
                } else {
                    format!("; write a value of 0 or more, or leave `{key}` out for its default")
                };
                // Spanned from the `-` to the digits.
                let mut tokens = TokenStream::new();
                let mut punct = Punct::new('-', Spacing::Alone);
                punct.set_span(minus);
                tokens.extend([TokenTree::Punct(punct)]);
                lit.to_tokens(&mut tokens);
                self.errors.push(syn::Error::new_spanned(
                    tokens,
                    format!(
                        "`{key}` in {} must be >= 0, found -{}{hint}",
                        self.what,
                        lit.base10_digits().trim_start_matches('-')
                    ),
                ));
                None
            }
            other => {
                self.mismatch(key, &other, "a non-negative integer");
                None
            }
        }
    }

    /// `key = true|false` or the bare flag `key` (= true).
    pub fn bool(&mut self, key: &str) -> Option<(bool, Span)> {
        match self.take(key)? {
            Arg::Flag(k) => Some((true, k.span())),
            Arg::Assign(_, Value::Bool(b)) => Some((b.value, b.span)),
            Arg::Assign(_, other) => {
                self.mismatch(key, &other, "`true` or `false`");
                None
            }
            Arg::List(k, _) => {
                self.errors.push(syn::Error::new(
                    k.span(),
                    format!(
                        "`{key}` in {} is a flag: write `{key}` or `{key} = false`",
                        self.what
                    ),
                ));
                None
            }
            Arg::Positional(_) => None,
        }
    }

    /// `key = Name` (a single identifier).
    pub fn ident(&mut self, key: &str) -> Option<Ident> {
        let (_, v) = self.value(key)?;
        self.expect_ident(key, v)
    }

    fn expect_ident(&mut self, key: &str, v: Value) -> Option<Ident> {
        match v {
            Value::Path(p) if p.get_ident().is_some() => p.get_ident().cloned(),
            other => {
                self.mismatch(key, &other, "a name declared in this contract module");
                None
            }
        }
    }

    /// `key = [A, B]` (identifiers).
    pub fn ident_list(&mut self, key: &str) -> Option<Vec<Ident>> {
        let (_, v) = self.value(key)?;
        match v {
            Value::Array(_, items) => Some(
                items
                    .into_iter()
                    .filter_map(|i| self.expect_ident(key, i))
                    .collect(),
            ),
            other => {
                self.mismatch(key, &other, "a list like `[A, B]`");
                None
            }
        }
    }

    /// `key = ["a", "b"]`.
    pub fn str_list(&mut self, key: &str) -> Option<Vec<LitStr>> {
        let (_, v) = self.value(key)?;
        self.expect_str_list(key, v)
    }

    fn expect_str_list(&mut self, key: &str, v: Value) -> Option<Vec<LitStr>> {
        match v {
            Value::Array(_, items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::Str(s) => out.push(s),
                        other => self.mismatch(key, &other, "a list of string literals"),
                    }
                }
                Some(out)
            }
            other => {
                self.mismatch(key, &other, "a list like `[\"...\"]`");
                None
            }
        }
    }

    /// `key = [1, 2]`.
    pub fn uint_list(&mut self, key: &str) -> Option<Vec<u64>> {
        let (_, v) = self.value(key)?;
        match v {
            Value::Array(_, items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::Int { lit, minus: None } => match lit.base10_parse::<u64>() {
                            Ok(n) => out.push(n),
                            Err(e) => self.errors.push(e),
                        },
                        other => self.mismatch(key, &other, "a list of non-negative integers"),
                    }
                }
                Some(out)
            }
            other => {
                self.mismatch(key, &other, "a list like `[1000, 5000]`");
                None
            }
        }
    }

    /// `key(...)` nested arguments.
    pub fn list(&mut self, key: &str) -> Option<(Ident, Vec<Arg>)> {
        match self.take(key)? {
            Arg::List(k, args) => Some((k, args)),
            Arg::Assign(k, _) | Arg::Flag(k) => {
                self.errors.push(syn::Error::new(
                    k.span(),
                    format!(
                        "`{key}` in {} takes arguments: write `{key}(...)`",
                        self.what
                    ),
                ));
                None
            }
            Arg::Positional(_) => None,
        }
    }

    /// Every remaining `key = ["..."]` pair (for maps keyed by a name).
    pub fn remaining_str_lists(&mut self) -> Vec<(Ident, Vec<LitStr>)> {
        let mut out = Vec::new();
        let rest: Vec<Arg> = self.args.iter_mut().filter_map(Option::take).collect();
        for arg in rest {
            match arg {
                Arg::Assign(k, v) => {
                    let key = k.to_string();
                    if let Some(list) = self.expect_str_list(&key, v) {
                        out.push((k, list));
                    }
                }
                other => self.errors.push(syn::Error::new(
                    other.span(),
                    format!("expected `Alias = [\"Event.Name\", ...]` in {}", self.what),
                )),
            }
        }
        out
    }

    /// Every remaining `key = Name` argument (keys chosen by the author,
    /// e.g. version labels); anything else is an error naming `expected`.
    pub fn remaining_names(&mut self, expected: &str) -> Vec<(Ident, Ident)> {
        let mut out = Vec::new();
        let rest: Vec<Arg> = self.args.iter_mut().filter_map(Option::take).collect();
        for arg in rest {
            match arg {
                Arg::Assign(k, Value::Path(p)) if p.get_ident().is_some() => {
                    if let Some(name) = p.get_ident() {
                        out.push((k, name.clone()));
                    }
                }
                other => self.errors.push(syn::Error::new(
                    other.span(),
                    format!("expected {expected} in {}", self.what),
                )),
            }
        }
        out
    }

    /// Reports every argument nobody took.
    pub fn finish(self) {
        let expected = self
            .allowed
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for arg in self.args.into_iter().flatten() {
            let msg = match arg.key() {
                Some(k) => {
                    let k = k.unraw().to_string();
                    let hint = self
                        .allowed
                        .iter()
                        .filter(|a| edit_distance(a, &k) <= 2.min(a.len() / 2))
                        .min_by_key(|a| edit_distance(a, &k))
                        .map(|a| format!("did you mean `{a}`? "))
                        .unwrap_or_default();
                    format!(
                        "unknown key `{k}` in {}; {hint}expected one of: {expected}",
                        self.what
                    )
                }
                None => format!(
                    "unexpected positional value in {}; expected one of: {expected}",
                    self.what
                ),
            };
            self.errors.push(syn::Error::new(arg.span(), msg));
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelled keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("history", "histroy"), 2);
        assert_eq!(edit_distance("ttl_ms", "ttl"), 3);
        assert_eq!(edit_distance("schema", "schema"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn negative_int() {
        let v: Value = syn::parse_str("-1").unwrap();
        assert!(matches!(v, Value::Int { minus: Some(_), ref lit } if lit.base10_digits() == "1"));
        let v: Value = syn::parse_str("7").unwrap();
        assert!(matches!(v, Value::Int { minus: None, .. }));
    }
}

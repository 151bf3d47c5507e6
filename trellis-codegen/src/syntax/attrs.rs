//! DSL attributes on items: which attributes belong to the contract DSL
//! (and which name removed concepts), where to point errors about them,
//! doc comments as manifest docs, and stripping DSL attributes from the
//! items passed through.

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;

use super::Parser;
use crate::args::{Arg, Args, parse_attr_args};
use trellis_manifest::manifest::Docs;

const DSL_ATTRS: &[&str] = &[
    "kv",
    "store",
    "rpc",
    "operation",
    "event",
    "capability",
    "uses",
    "event_consumer",
    "state",
];

/// Attributes that name concepts v1 does not have, with the fix.
pub(super) const REJECTED_ATTRS: &[(&str, &str)] = &[
    (
        "stream",
        "stream resources do not exist in trellis.contract.v1: declare #[event]s (the runtime owns their streams) or a #[kv]/#[store] resource",
    ),
    (
        "job",
        "job resources do not exist in trellis.contract.v1: model long-running work as an #[operation]",
    ),
    (
        "jobs",
        "job resources do not exist in trellis.contract.v1: model long-running work as an #[operation]",
    ),
    (
        "subject",
        "raw subjects do not exist in trellis.contract.v1: subjects are derived from the contract; declare an #[rpc], #[operation] or #[event]",
    ),
    (
        "subjects",
        "raw subjects do not exist in trellis.contract.v1: subjects are derived from the contract; declare an #[rpc], #[operation] or #[event]",
    ),
];

pub(super) fn dsl_attr_name(attr: &syn::Attribute) -> Option<String> {
    let segs: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect();
    match segs.as_slice() {
        [one] => Some(one.clone()),
        [t, one] if t == "trellis" => Some(one.clone()),
        _ => None,
    }
}

/// Whether `attr` belongs to the contract DSL (`#[kv]`, `#[rpc]`, ...).
pub fn is_dsl_attr(attr: &syn::Attribute) -> bool {
    dsl_attr_name(attr).is_some_and(|n| {
        DSL_ATTRS.contains(&n.as_str()) || REJECTED_ATTRS.iter().any(|(r, _)| *r == n)
    })
}

/// Collects doc comments into manifest docs.
pub fn docs_of(attrs: &[syn::Attribute]) -> Option<Docs> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }),
                ..
            }) => Some(s.value()),
            _ => None,
        })
        .flat_map(|s| s.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned())
        .collect();
    let markdown = lines.join("\n").trim().to_owned();
    if markdown.is_empty() {
        return None;
    }
    let summary = markdown.lines().next().map(str::to_owned);
    Some(Docs { summary, markdown })
}

pub(super) fn doc_attrs(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}

impl Parser {
    pub(super) fn args<'a>(
        &'a mut self,
        attr: &syn::Attribute,
        what: &str,
        allowed: &'static [&'static str],
    ) -> Option<Args<'a>> {
        match parse_attr_args(attr) {
            Ok(args) => Some(Args::new(
                format!("#[{what}(...)]"),
                attr_span(attr),
                allowed,
                args,
                &mut self.errors,
            )),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
}

pub(super) fn alias_override(attr: &syn::Attribute) -> Option<String> {
    let args = parse_attr_args(attr).ok()?;
    args.into_iter().find_map(|a| match a {
        Arg::Assign(k, crate::args::Value::Str(s)) if k == "alias" => Some(s.value()),
        _ => None,
    })
}

/// Where to point errors about an attribute as a whole: its name (`kv` in
/// `#[kv(...)]`). `attr.span()` would cover only the `#` on stable Rust.
pub(super) fn attr_span(attr: &syn::Attribute) -> Span {
    attr.path()
        .segments
        .last()
        .map_or_else(|| attr.span(), |s| s.ident.span())
}

pub(super) fn find_dsl<'a>(attrs: &'a [syn::Attribute], name: &str) -> Option<&'a syn::Attribute> {
    attrs
        .iter()
        .find(|a| dsl_attr_name(a).as_deref() == Some(name))
}

pub(super) fn item_attrs(item: &syn::Item) -> Option<&[syn::Attribute]> {
    Some(match item {
        syn::Item::Struct(s) => &s.attrs,
        syn::Item::Enum(e) => &e.attrs,
        syn::Item::Const(c) => &c.attrs,
        syn::Item::Use(u) => &u.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Type(t) => &t.attrs,
        _ => return None,
    })
}

pub(super) fn strip_dsl<T>(mut item: T, attrs: impl Fn(&mut T) -> &mut Vec<syn::Attribute>) -> T {
    attrs(&mut item).retain(|a| !is_dsl_attr(a));
    item
}

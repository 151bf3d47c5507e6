//! `#[capability(...)]` on a string const: the contract's capabilities, and
//! capability identifiers named elsewhere mapped to their global keys.

use syn::Ident;
use syn::spanned::Spanned as _;

use super::Parser;
use super::attrs::{attr_span, docs_of};
use trellis_manifest::manifest::{CapabilityMeta, Manifest};
use trellis_manifest::names;

impl Parser {
    fn global_cap(&self, local: &str) -> String {
        format!("{}::{local}", self.namespace)
    }

    /// Maps capability identifiers to global keys, reporting undeclared ones.
    pub(super) fn caps(&mut self, idents: Option<Vec<Ident>>) -> Option<Vec<String>> {
        let idents = idents?;
        let mut out = Vec::new();
        for ident in idents {
            match self.capabilities.get(&ident.to_string()) {
                Some(local) => out.push(self.global_cap(local)),
                None => self.errors.at(
                    ident.span(),
                    format!(
                        "undeclared capability `{ident}`: declare it in this module, e.g. \
                         `#[capability(display_name = \"...\", description = \"...\")] \
                         pub const {ident}: &str = \"{}\";`",
                        names::snake_case(&ident.to_string()).replace('_', ".")
                    ),
                ),
            }
        }
        Some(out)
    }

    pub(super) fn capability(
        &mut self,
        attr: &syn::Attribute,
        c: &syn::ItemConst,
        manifest: &mut Manifest,
    ) {
        let Some(mut a) = self.args(
            attr,
            "capability",
            &["display_name", "description", "consequence"],
        ) else {
            return;
        };
        let display = a.str("display_name");
        let description = a.str("description");
        let consequence = a.str("consequence");
        a.finish();
        let local = match &*c.expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.clone(),
            other => {
                self.errors.at(
                    other.span(),
                    "a capability const must be a string literal naming it locally, e.g. `\"read\"`",
                );
                return;
            }
        };
        if !names::valid_capability(&local.value()) {
            self.errors.at(
                local.span(),
                format!(
                    "capability name `{}` must be lowercase words separated by `.`, `-` or `_`",
                    local.value()
                ),
            );
        }
        let docs = docs_of(&c.attrs);
        let description = description
            .map(|d| d.value())
            .or_else(|| docs.map(|d| d.markdown));
        let Some(description) = description else {
            self.errors.at(
                c.ident.span(),
                format!(
                    "capability `{}` needs a description: add a doc comment or `description = \"...\"`",
                    c.ident
                ),
            );
            return;
        };
        let Some(display) = display else {
            self.errors.at(
                attr_span(attr),
                "a capability needs `display_name = \"...\"`",
            );
            return;
        };
        let key = self.global_cap(&local.value());
        if manifest.capabilities.contains_key(&key) {
            self.errors.at(
                local.span(),
                format!("duplicate capability `{}`", local.value()),
            );
        }
        self.spans
            .insert(["capabilities", key.as_str()], c.ident.span());
        manifest.capabilities.insert(
            key,
            CapabilityMeta {
                display_name: display.value(),
                description,
                consequence: consequence.map(|c| c.value()),
            },
        );
    }
}

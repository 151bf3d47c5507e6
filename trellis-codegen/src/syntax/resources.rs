//! `#[kv(...)]` and `#[store(...)]` on a marker struct: the contract's
//! resources, with aliases unique across both.

use proc_macro2::Span;
use syn::{Ident, LitStr};

use super::attrs::{doc_attrs, docs_of};
use super::{Contract, Parser, ResourceDecl};
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::{KvResource, Resources, SchemaRef, StoreResource};
use trellis_manifest::names;

impl Parser {
    fn alias_of(&mut self, ident: &Ident, explicit: Option<LitStr>) -> String {
        match explicit {
            Some(lit) => {
                let v = lit.value();
                if !names::valid_alias(&v) {
                    self.errors.at(
                        lit.span(),
                        format!("alias `{v}` must be snake_case (`[a-z][a-z0-9_]*`)"),
                    );
                }
                v
            }
            None => names::snake_case(&ident.to_string()),
        }
    }

    fn check_alias_unique(&mut self, alias: &str, span: Span, taken: &[(&str, &str)]) -> bool {
        let norm = names::normalized(alias);
        if let Some((other, kind)) = taken.iter().find(|(a, _)| names::normalized(a) == norm) {
            self.errors.at(
                span,
                format!(
                    "duplicate resource alias `{alias}`: it collides with {kind} `{other}` \
                     (aliases must be unique across kv and store after case normalization); \
                     rename one of them"
                ),
            );
            return false;
        }
        true
    }

    fn taken_aliases(resources: &Resources) -> Vec<(&str, &'static str)> {
        resources
            .kv
            .keys()
            .map(|a| (a.as_str(), "kv"))
            .chain(resources.store.keys().map(|a| (a.as_str(), "store")))
            .collect()
    }

    pub(super) fn kv(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        resources: &mut Resources,
        types: &SchemaTypes,
    ) {
        let ident = &s.ident;
        let Some(mut a) = self.args(
            attr,
            "kv",
            &[
                "purpose",
                "schema",
                "history",
                "ttl_ms",
                "max_value_bytes",
                "required",
                "alias",
            ],
        ) else {
            return;
        };
        let purpose = a.str("purpose");
        let schema = a.ident("schema");
        let history = a.uint("history");
        let ttl = a.uint("ttl_ms");
        let max_value = a.uint("max_value_bytes");
        let required = a.bool("required");
        let alias_lit = a.str("alias");
        let span = a.span();
        if purpose.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[kv] `{ident}` needs a `purpose`: add `purpose = \"why this bucket exists\"`"
                ),
            );
        }
        if schema.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[kv] `{ident}` needs a value `schema`: add `schema = Item` naming a schema \
                     type declared in this module"
                ),
            );
        }
        a.finish();
        let alias = self.alias_of(ident, alias_lit);
        let taken = Self::taken_aliases(resources);
        if !self.check_alias_unique(&alias, ident.span(), &taken) {
            return;
        }
        let path = |k: &str| {
            vec![
                "resources".to_owned(),
                "kv".to_owned(),
                alias.clone(),
                k.to_owned(),
            ]
        };
        self.spans
            .insert(["resources", "kv", alias.as_str()], ident.span());
        if let Some(p) = &purpose {
            self.spans.insert(path("purpose"), p.span());
        }
        if let Some(s) = &schema {
            self.spans.insert(path("schema"), s.span());
        }
        for (k, v) in [
            ("history", &history),
            ("ttlMs", &ttl),
            ("maxValueBytes", &max_value),
        ] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(k), *sp);
            }
        }
        let (Some(purpose), Some(schema)) = (purpose, schema) else {
            return;
        };
        let Some(schema_name) = self.named_schema(&schema, types, &mut out.manifest) else {
            return;
        };
        let required = required.map(|(b, _)| b).unwrap_or(true);
        resources.kv.insert(
            alias.clone(),
            KvResource {
                purpose: purpose.value(),
                schema: SchemaRef::new(schema_name),
                required: Some(required),
                history: Some(history.map(|(n, _)| n).unwrap_or(1)),
                ttl_ms: Some(ttl.map(|(n, _)| n).unwrap_or(0)),
                max_value_bytes: max_value.map(|(n, _)| n),
                docs: docs_of(&s.attrs),
            },
        );
        out.kv.push(ResourceDecl {
            ident: ident.clone(),
            vis: s.vis.clone(),
            alias,
            schema: Some(schema),
            required,
            docs: doc_attrs(&s.attrs),
        });
    }

    pub(super) fn store(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        resources: &mut Resources,
    ) {
        let ident = &s.ident;
        let Some(mut a) = self.args(
            attr,
            "store",
            &["purpose", "ttl_ms", "max_total_bytes", "required", "alias"],
        ) else {
            return;
        };
        if let Some((k, _)) = a.value("max_object_bytes") {
            a.errors().at(
                k.span(),
                "per-object limits are not supported in trellis-rs v1: remove `max_object_bytes` \
                 and bound single uploads with the operation's `transfer(max_bytes = ...)` instead",
            );
        }
        let purpose = a.str("purpose");
        let ttl = a.uint("ttl_ms");
        let max_total = a.uint("max_total_bytes");
        let required = a.bool("required");
        let alias_lit = a.str("alias");
        let span = a.span();
        if purpose.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[store] `{ident}` needs a `purpose`: add `purpose = \"why this store exists\"`"
                ),
            );
        }
        a.finish();
        let alias = self.alias_of(ident, alias_lit);
        let taken = Self::taken_aliases(resources);
        if !self.check_alias_unique(&alias, ident.span(), &taken) {
            return;
        }
        let path = |k: &str| {
            vec![
                "resources".to_owned(),
                "store".to_owned(),
                alias.clone(),
                k.to_owned(),
            ]
        };
        self.spans
            .insert(["resources", "store", alias.as_str()], ident.span());
        for (k, v) in [("ttlMs", &ttl), ("maxTotalBytes", &max_total)] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(k), *sp);
            }
        }
        let Some(purpose) = purpose else {
            return;
        };
        let required = required.map(|(b, _)| b).unwrap_or(true);
        resources.store.insert(
            alias.clone(),
            StoreResource {
                purpose: purpose.value(),
                required: Some(required),
                ttl_ms: Some(ttl.map(|(n, _)| n).unwrap_or(0)),
                max_object_bytes: None,
                max_total_bytes: max_total.map(|(n, _)| n),
                docs: docs_of(&s.attrs),
            },
        );
        out.stores.push(ResourceDecl {
            ident: ident.clone(),
            vis: s.vis.clone(),
            alias,
            schema: None,
            required,
            docs: doc_attrs(&s.attrs),
        });
    }
}

//! `#[state(...)]` on a marker struct: a public state store of
//! `trellis.state@v1` (the manifest's `state.<name>`), with the version of
//! its current value schema and the older versions still readable as they
//! are.

use std::collections::BTreeMap;

use syn::Ident;

use super::attrs::{doc_attrs, docs_of};
use super::{Contract, Parser, StateDecl};
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::{SchemaRef, StateKind, StateStore};
use trellis_manifest::names;

impl Parser {
    pub(super) fn state(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        types: &SchemaTypes,
    ) {
        let ident = &s.ident;
        let Some(mut a) = self.args(
            attr,
            "state",
            &["kind", "schema", "version", "accepts", "name"],
        ) else {
            return;
        };
        let kind = a.str("kind");
        let schema = a.ident("schema");
        let version = a.str("version");
        let accepts = a.list("accepts");
        let name_lit = a.str("name");
        let span = a.span();
        if schema.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[state] `{ident}` needs a value `schema`: add `schema = Settings` naming a \
                     schema type"
                ),
            );
        }
        let kind = match kind.as_ref().map(|k| (k.value(), k.span())) {
            Some((k, _)) if k == "value" => Some(StateKind::Value),
            Some((k, _)) if k == "map" => Some(StateKind::Map),
            Some((other, at)) => {
                a.errors().at(
                    at,
                    format!(
                        "unknown state kind `{other}`: write `kind = \"value\"` (one value per \
                         user) or `kind = \"map\"` (entries by key)"
                    ),
                );
                None
            }
            None => {
                a.errors().at(
                    span,
                    format!(
                        "#[state] `{ident}` needs a `kind`: `kind = \"value\"` (one value per \
                         user) or `kind = \"map\"` (entries by key)"
                    ),
                );
                None
            }
        };
        a.finish();
        let accepted: Vec<(Ident, Ident)> = match accepts {
            Some((k, args)) => {
                let mut list =
                    crate::args::Args::new("accepts(...)", k.span(), &[], args, &mut self.errors);
                let pairs = list.remaining_names("`v1 = SettingsV1` (version label = schema type)");
                list.finish();
                pairs
            }
            None => Vec::new(),
        };
        let name = match &name_lit {
            Some(lit) => {
                let v = lit.value();
                if !names::valid_alias(&v) {
                    self.errors.at(
                        lit.span(),
                        format!("state name `{v}` must be snake_case (`[a-z][a-z0-9_]*`)"),
                    );
                }
                v
            }
            None => names::snake_case(&ident.to_string()),
        };
        if out
            .manifest
            .state
            .as_ref()
            .is_some_and(|st| st.contains_key(&name))
        {
            self.errors.at(
                ident.span(),
                format!("two #[state] stores are named `{name}`; rename one (`name = \"...\"`)"),
            );
            return;
        }
        let version = version.map(|v| (v.value(), v.span()));
        if let Some((v, at)) = &version
            && v.trim().is_empty()
        {
            self.errors.at(
                *at,
                "the state version must not be empty, e.g. `version = \"v2\"`",
            );
        }
        if version.is_none()
            && let Some((label, _)) = accepted.first()
        {
            self.errors.at(
                label.span(),
                "older versions are accepted relative to a current one: add `version = \"v2\"` \
                 (the label of `schema`)",
            );
        }
        let mut accepted_versions = BTreeMap::new();
        for (label, ty) in &accepted {
            let label_text = label.to_string();
            if version.as_ref().is_some_and(|(v, _)| *v == label_text) {
                self.errors.at(
                    label.span(),
                    format!("`{label_text}` is the current version; list only older ones"),
                );
                continue;
            }
            let Some(schema_name) = self.named_schema(ty, types, &mut out.manifest) else {
                continue;
            };
            self.spans.insert(
                [
                    "state",
                    name.as_str(),
                    "acceptedVersions",
                    label_text.as_str(),
                ],
                ty.span(),
            );
            if accepted_versions
                .insert(label_text.clone(), SchemaRef::new(schema_name))
                .is_some()
            {
                self.errors.at(
                    label.span(),
                    format!("version `{label_text}` is listed twice; keep one"),
                );
            }
        }
        let (Some(kind), Some(schema)) = (kind, schema) else {
            return;
        };
        let Some(schema_name) = self.named_schema(&schema, types, &mut out.manifest) else {
            return;
        };
        self.spans
            .insert(["state", name.as_str(), "schema"], schema.span());
        out.manifest.state.get_or_insert_default().insert(
            name.clone(),
            StateStore {
                kind,
                schema: SchemaRef::new(schema_name),
                state_version: version.map(|(v, _)| v),
                accepted_versions: (!accepted_versions.is_empty()).then_some(accepted_versions),
                docs: docs_of(&s.attrs),
            },
        );
        out.states.push(StateDecl {
            ident: ident.clone(),
            vis: s.vis.clone(),
            name,
            schema,
            docs: doc_attrs(&s.attrs),
        });
    }
}

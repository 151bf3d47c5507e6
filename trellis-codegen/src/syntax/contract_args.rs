//! `#[trellis::contract(id = ..., display_name = ..., description = ...,
//! schemas = ...)]`: the contract's own arguments, checked, and the shared
//! schema file `schemas = "..."` names.

use std::path::PathBuf;

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::{LitStr, Token};

use super::SpanMap;
use crate::args::{Arg, Args};
use crate::errors::Errors;
use crate::schema::SchemaTypes;
use trellis_manifest::names;

/// Arguments of `#[trellis::contract(...)]`.
pub struct ContractArgs {
    args: Vec<Arg>,
    span: Span,
}

impl ContractArgs {
    /// Parses the attribute's argument tokens.
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        // The attribute itself (`#[trellis::contract(...)]`): errors about
        // missing keys belong there, not on whichever argument comes first.
        let span = Span::call_site();
        let args =
            syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)?;
        Ok(ContractArgs {
            args: args.into_iter().collect(),
            span,
        })
    }

    /// Reads the arguments, reporting missing and invalid ones.
    pub(super) fn read(self, errors: &mut Errors) -> Header {
        let mut a = Args::new(
            "#[trellis::contract(...)]",
            self.span,
            &["id", "display_name", "description", "schemas"],
            self.args,
            errors,
        );
        let id = a.str("id");
        let display_name = a.str("display_name");
        let description = a.str("description");
        let schemas_file = a.str("schemas");
        a.finish();

        let mut spans = SpanMap::default();
        let id_value = match &id {
            Some(lit) => {
                let v = lit.value();
                spans.insert(["id"], lit.span());
                if !names::valid_contract_id(&v) {
                    errors.at(
                        lit.span(),
                        format!(
                            "invalid contract id `{v}`: write `<name>@v<N>`, e.g. `documents@v1` \
                             (lowercase name, dot/dash separated; N >= 1)"
                        ),
                    );
                }
                v
            }
            None => {
                errors.at(
                    self.span,
                    "missing contract id: add `id = \"<name>@v<N>\"`, e.g. `id = \"documents@v1\"`",
                );
                String::new()
            }
        };
        let mut text_arg = |lit: &Option<LitStr>, key: &str, example: &str| -> String {
            match lit {
                Some(l) if !l.value().trim().is_empty() => l.value(),
                Some(l) => {
                    errors.at(l.span(), format!("`{key}` must not be empty"));
                    String::new()
                }
                None => {
                    errors.at(
                        self.span,
                        format!("missing `{key}`: add `{key} = \"{example}\"`"),
                    );
                    String::new()
                }
            }
        };
        let display_name = text_arg(&display_name, "display_name", "Documents");
        let description = text_arg(&description, "description", "What this service does");
        Header {
            id: id_value,
            display_name,
            description,
            schemas: schemas_file,
            spans,
        }
    }
}

/// What the contract's arguments say.
pub(super) struct Header {
    pub(super) id: String,
    pub(super) display_name: String,
    pub(super) description: String,
    pub(super) schemas: Option<LitStr>,
    pub(super) spans: SpanMap,
}

/// Loads the shared schema file `schemas = "..."` names into `schema_types`,
/// recording it in `files`.
pub(super) fn load_schemas(
    lit: &LitStr,
    errors: &mut Errors,
    schema_types: &mut SchemaTypes,
    files: &mut Vec<PathBuf>,
) {
    match crate::schema::locate_library(&lit.value()) {
        None => errors.at(
            lit.span(),
            "`schemas = \"...\"` is relative to the crate root, but CARGO_MANIFEST_DIR is \
             not set; build with Cargo",
        ),
        Some(path) => match crate::schema::load_library(&path) {
            Ok(library) => {
                schema_types.set_library(library);
                files.push(path);
            }
            Err(why) => errors.at(
                lit.span(),
                format!(
                    "shared schema file `{}` ({}): {why}",
                    lit.value(),
                    path.display()
                ),
            ),
        },
    }
}

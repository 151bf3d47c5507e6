//! What RPCs, operations and events share: the surface's `"Group.Leaf"`
//! name, the declared `fn` signature (input, output, error) and the manifest
//! schema names of its input and output.

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::Ident;
use syn::spanned::Spanned as _;

use super::Parser;
use crate::args::Args;
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::Manifest;
use trellis_manifest::names;

impl Parser {
    /// Checks `fn name(input: In) -> Out` (or `fn name() -> Out`) and
    /// returns (input, output, error).
    pub(super) fn signature(
        &mut self,
        f: &syn::ForeignItemFn,
        allow_result: bool,
    ) -> Option<(Option<syn::Type>, syn::Type, Option<Ident>)> {
        let sig = &f.sig;
        if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
            self.errors.at(
                sig.ident.span(),
                "declare the signature plainly (`fn name(input: In) -> Out;`): no `async`, no generics",
            );
            return None;
        }
        let inputs: Vec<&syn::FnArg> = sig.inputs.iter().collect();
        let input = match inputs.as_slice() {
            [] => None,
            [syn::FnArg::Typed(pt)] => Some((*pt.ty).clone()),
            _ => {
                self.errors.at(
                    sig.inputs
                        .span()
                        .join(sig.ident.span())
                        .unwrap_or(sig.ident.span()),
                    "declare at most one input parameter, whose type is a schema type \
                     expression, e.g. `fn files_list(input: ListRequest) -> FilePage;` \
                     (or none: `fn health() -> Health;`)",
                );
                return None;
            }
        };
        let syn::ReturnType::Type(_, ret) = &sig.output else {
            self.errors.at(
                sig.ident.span(),
                "declare the output type: `-> Output` (a schema type expression such as \
                 `Task`, `Vec<Task>` or `Page<Task>`; `-> ()` for none)",
            );
            return None;
        };
        if let syn::Type::Path(p) = &**ret
            && let Some(last) = p.path.segments.last()
            && last.ident == "Result"
        {
            if !allow_result {
                let ok = match &last.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|a| match a {
                            syn::GenericArgument::Type(t) => {
                                Some(format!(" (`-> {}`)", written_type(t)))
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                };
                self.errors.at(
                    last.ident.span(),
                    format!(
                        "operations report failure through their terminal state, not `Result`: \
                         return the output type itself{}",
                        ok.unwrap_or_default()
                    ),
                );
                return None;
            }
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                self.errors.at(last.span(), "write `Result<Output, Error>`");
                return None;
            };
            let tys: Vec<&syn::Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            let [ok, error] = tys.as_slice() else {
                self.errors.at(last.span(), "write `Result<Output, Error>`");
                return None;
            };
            let error = self.schema_ident(error, "error")?;
            return Some((input, (*ok).clone(), Some(error)));
        }
        Some((input, (**ret).clone(), None))
    }

    /// A declared error type: a schema type of this module, by its name.
    fn schema_ident(&mut self, ty: &syn::Type, role: &str) -> Option<Ident> {
        if let syn::Type::Path(p) = ty
            && p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            return Some(ident.clone());
        }
        self.errors.at(
            ty.span(),
            format!(
                "the {role} must be a schema type declared in this module (a plain name): \
                 its name is the error's `type` on the wire"
            ),
        );
        None
    }

    /// The manifest schema of a value type named in an attribute (a KV or
    /// state value): this module's type by name, or a shared schema
    /// module's, added to `schemas` here.
    pub(super) fn named_schema(
        &mut self,
        ty: &Ident,
        types: &SchemaTypes,
        manifest: &mut Manifest,
    ) -> Option<String> {
        if !types.is_shared(ty) {
            return Some(ty.to_string());
        }
        let written: syn::Type = syn::parse_quote!(#ty);
        self.surface_schema(Some(&written), ty.span(), types, manifest)
    }

    /// The manifest schema name of a surface's input or output (`None`: no
    /// input), adding the named schemas it needs to the manifest. Two
    /// different schemas under one name are an error at `ty`.
    pub(super) fn surface_schema(
        &mut self,
        ty: Option<&syn::Type>,
        at: Span,
        types: &SchemaTypes,
        manifest: &mut Manifest,
    ) -> Option<String> {
        let (name, named) = match ty {
            None => (
                crate::schema::EMPTY.to_owned(),
                BTreeMap::from([(
                    crate::schema::EMPTY.to_owned(),
                    crate::schema::empty_schema(),
                )]),
            ),
            Some(ty) => match types.surface_schema(ty) {
                Ok(found) => found,
                Err(e) => {
                    self.errors.push(e);
                    return None;
                }
            },
        };
        for (key, schema) in named {
            match manifest.schemas.get(&key) {
                Some(existing) if *existing != schema => {
                    let written = ty
                        .map(written_type)
                        .unwrap_or_else(|| "no input".to_owned());
                    let message = format!(
                        "`{written}` needs the manifest schema `{key}`, but that name already \
                         holds a different schema (a schema type of this module, or another \
                         expression with the same name); rename the schema type `{key}`"
                    );
                    match ty {
                        Some(ty) => self.errors.push(syn::Error::new_spanned(ty, message)),
                        None => self.errors.at(at, message),
                    }
                    return None;
                }
                Some(_) => {}
                None => {
                    manifest.schemas.insert(key, schema);
                }
            }
        }
        Some(name)
    }
}

/// A type as its author wrote it (`Vec<Task>`, not `Vec < Task >`).
fn written_type(ty: &syn::Type) -> String {
    quote::ToTokens::to_token_stream(ty)
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
}

pub(super) fn self_surface_name(
    a: &mut Args<'_>,
    kind: &str,
    taken: &[String],
) -> Option<(String, Span)> {
    let span = a.span();
    let Some(lit) = a.positional_str() else {
        a.errors().at(
            span,
            format!("#[{kind}] needs a name first: `#[{kind}(\"Group.Leaf\", ...)]`"),
        );
        return None;
    };
    let name = lit.value();
    if !names::valid_surface_name(&name) {
        a.errors().at(
            lit.span(),
            format!(
                "invalid {kind} name `{name}`: write `<Group>.<Leaf>` in PascalCase, e.g. `Files.List`"
            ),
        );
        return None;
    }
    let norm = names::normalized(&name);
    if let Some(other) = taken.iter().find(|t| names::normalized(t) == norm) {
        let msg = if *other == name {
            format!(
                "duplicate {kind} name `{name}`: this contract already declares an {kind} \
                 named `{name}`; rename one of them or remove the duplicate"
            )
        } else {
            format!(
                "duplicate {kind} name `{name}`: it collides with `{other}` (names must differ \
                 by more than case); rename one of them"
            )
        };
        a.errors().at(lit.span(), msg);
        return None;
    }
    Some((name, lit.span()))
}

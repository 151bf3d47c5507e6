//! `Service::kv` and `Service::store`: each `#[kv]`/`#[store]` marker
//! becomes a typed handle alias, gathered by alias in `KvResources` and
//! `StoreResources`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::syntax::ResourceDecl;

fn handle_type(decl: &ResourceDecl, kv: bool) -> TokenStream {
    if kv {
        let schema = &decl.schema;
        quote! { ::trellis::KvHandle<#schema> }
    } else {
        quote! { ::trellis::StoreHandle }
    }
}

pub(super) fn resource_group(
    decls: &[ResourceDecl],
    kv: bool,
    group: &syn::Ident,
    what: &str,
) -> (TokenStream, TokenStream) {
    let mut aliases = TokenStream::new();
    let mut fields = TokenStream::new();
    let mut inits = TokenStream::new();
    for decl in decls {
        let ident = &decl.ident;
        let vis = &decl.vis;
        let docs = &decl.docs;
        let handle = handle_type(decl, kv);
        let alias = &decl.alias;
        let field = format_ident!("{}", decl.alias);
        aliases.extend(quote! {
            #(#docs)*
            #vis type #ident = #handle;
        });
        let (ty, init) = match (kv, decl.required) {
            (true, true) => (quote!(#ident), quote!(bindings.kv(#alias)?)),
            (true, false) => (
                quote!(::core::option::Option<#ident>),
                quote!(bindings.kv_optional(#alias)?),
            ),
            (false, true) => (quote!(#ident), quote!(bindings.store(#alias)?)),
            (false, false) => (
                quote!(::core::option::Option<#ident>),
                quote!(bindings.store_optional(#alias)?),
            ),
        };
        let doc = format!("The `{alias}` {what} (see [`{ident}`]).");
        fields.extend(quote! {
            #[doc = #doc]
            pub #field: #ty,
        });
        inits.extend(quote! { #field: #init, });
    }
    let doc = format!("The {what}s this contract declares, by alias.");
    let def = quote! {
        #[doc = #doc]
        #[derive(Debug)]
        #[non_exhaustive]
        pub struct #group {
            #fields
        }
    };
    let build = quote! { #group { #inits } };
    (quote! { #aliases #def }, build)
}

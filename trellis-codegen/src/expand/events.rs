//! `Service::events`: an `EventPublisher` per declared event, grouped like
//! the event names.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::client::{accessor, marker};
use crate::syntax::Contract;

/// `Service::events`: publishers by group. Returns (definitions,
/// publisher init).
pub(super) fn event_surface(c: &Contract) -> (TokenStream, TokenStream) {
    let mut groups: std::collections::BTreeMap<
        String,
        Vec<(syn::Ident, TokenStream, TokenStream)>,
    > = Default::default();
    // Every event has a `surface` marker carrying its spec.
    for event in c
        .events
        .iter()
        .filter(|e| c.manifest.events.contains_key(&e.name))
    {
        let ty = &event.ident;
        let marker = marker(&event.name);
        let spec = quote!(<surface::event::#marker as ::trellis::__private::EventSurface>::SPEC);
        let (group, leaf) = accessor(&event.name);
        groups
            .entry(group.to_string())
            .or_default()
            .push((leaf, quote!(#ty), spec));
    }
    let mut defs = TokenStream::new();
    let (mut pub_fields, mut pub_inits) = (TokenStream::new(), TokenStream::new());
    for (group, leaves) in &groups {
        let field = format_ident!("{}", group);
        let pascal = trellis_manifest::names::pascal_case(group);
        let pub_ty = format_ident!("{}Events", pascal);
        let (mut pf, mut pi) = (TokenStream::new(), TokenStream::new());
        for (leaf, ty, spec) in leaves {
            let doc = format!("Publishes [`{ty}`] events.");
            pf.extend(quote! { #[doc = #doc] pub #leaf: ::trellis::EventPublisher<#ty>, });
            pi.extend(quote! { #leaf: ::trellis::EventPublisher::new(runtime.clone(), #spec), });
        }
        let pub_doc = format!("Publishers of the `{pascal}.*` events.");
        defs.extend(quote! {
            #[doc = #pub_doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #pub_ty { #pf }
        });
        pub_fields.extend(quote! { #[doc = #pub_doc] pub #field: #pub_ty, });
        pub_inits.extend(quote! { #field: #pub_ty { #pi }, });
    }
    let defs = quote! {
        /// This contract's event publishers, by group (owner side).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Events { #pub_fields }
        #defs
    };
    (defs, quote! { Events { #pub_inits } })
}

#[trellis::contract(
    id = "journal@v1",
    display_name = "Journal",
    description = "Keeps preferences"
)]
pub mod journal {
    use serde::{Deserialize, Serialize};

    /// Preferences.
    #[derive(Serialize, Deserialize)]
    pub struct Prefs {
        pub theme: String,
    }

    /// Older preferences.
    #[derive(Serialize, Deserialize)]
    pub struct PrefsV1 {
        pub dark: bool,
    }

    /// Older versions but no current one.
    #[state(kind = "value", schema = Prefs, accepts(v1 = PrefsV1))]
    pub struct UiPrefs;

    /// An unknown kind.
    #[state(kind = "list", schema = Prefs)]
    pub struct Recent;
}

fn main() {}

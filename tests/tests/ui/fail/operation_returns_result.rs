#[trellis::contract(
    id = "documents@v1",
    display_name = "Documents",
    description = "Stores and serves documents"
)]
pub mod documents {
    use serde::{Deserialize, Serialize};

    /// Input of an upload.
    #[derive(Serialize, Deserialize)]
    pub struct UploadInput {
        pub key: String,
    }

    /// Result of an upload.
    #[derive(Serialize, Deserialize)]
    pub struct UploadOutput {
        pub size: u64,
    }

    /// Why an upload failed.
    #[derive(Serialize, Deserialize)]
    pub enum UploadError {
        TooLarge,
    }

    /// Upload a file.
    #[operation("Files.Upload")]
    fn files_upload(input: UploadInput) -> Result<UploadOutput, UploadError>;
}

fn main() {}

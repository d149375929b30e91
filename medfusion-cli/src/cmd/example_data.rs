//! `medfusion example-data [DIR]`: the synthetic dataset written in the real file formats,
//! for the example workflows.

use std::path::PathBuf;
use std::process::ExitCode;

use medfusion_train::data::{DataError, SyntheticConfig, export_example_data};

use crate::output::{EXIT_INVALID, print_error};

/// Arguments of `medfusion example-data`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExampleDataArgs {
    /// The folder to write (created if missing; an earlier export there is replaced, files
    /// it did not write are not)
    #[arg(default_value = "examples/data")]
    dir: PathBuf,
    /// Samples over all splits (70% train, 15% val, 15% test)
    #[arg(long, default_value_t = SyntheticConfig::default().samples)]
    samples: usize,
    /// Image side in pixels (8 to 1024)
    #[arg(long, default_value_t = SyntheticConfig::default().image_size)]
    image_size: usize,
    /// Seed: the same seed and settings write the same files
    #[arg(long, default_value_t = SyntheticConfig::default().seed)]
    seed: u64,
    /// Replace `table.csv`, `medmnist.npz` and `multimodal/table.csv` even if an export did
    /// not write them (by default such files stop the export, and nothing is written)
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: ExampleDataArgs) -> anyhow::Result<ExitCode> {
    let config = SyntheticConfig {
        samples: args.samples,
        image_size: args.image_size,
        seed: args.seed,
        ..SyntheticConfig::default()
    };
    let report = match export_example_data(&args.dir, &config, args.force) {
        Ok(report) => report,
        // A setting out of range is the user's to fix, like an invalid workflow.
        Err(err @ DataError::InvalidConfig { .. }) => {
            print_error(&anyhow::Error::new(err));
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(err) => return Err(err.into()),
    };
    let sizes = report.split_sizes;
    outln!(
        "wrote {} files to {}: {} samples ({} train, {} val, {} test), classes {}",
        report.files(),
        report.dir.display(),
        sizes.train + sizes.val + sizes.test,
        sizes.train,
        sizes.val,
        sizes.test,
        report.classes.join(", "),
    );
    for output in &report.outputs {
        let path = output
            .path
            .strip_prefix(&report.dir)
            .unwrap_or(&output.path);
        let plural = if output.files == 1 { "" } else { "s" };
        outln!(
            "  {:<22} {:<20} {} file{plural}",
            output.node_type,
            path.display(),
            output.files
        );
    }
    outln!("features: {}", report.features.join(", "));
    Ok(ExitCode::SUCCESS)
}

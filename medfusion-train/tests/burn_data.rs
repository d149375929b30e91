//! medfusion-data's host batches through Burn: tensors of the right shape, and Burn's own
//! data loader reading the same samples as ours.

use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::Device;
use medfusion_train::data::{
    BatchLoader, BurnSampleDataset, DatasetSplits, LoaderConfig, Normalization, SampleBatcher,
    SyntheticConfig, generate_synthetic,
};
use medfusion_train::{Batch, BatchSource};

fn small_synthetic() -> DatasetSplits {
    generate_synthetic(&SyntheticConfig {
        samples: 90,
        image_size: 16,
        tabular_features: 5,
        ..SyntheticConfig::default()
    })
    .unwrap()
}

#[test]
fn batches_become_tensors_of_the_right_shape() {
    let data = small_synthetic();
    let device = Device::default();
    let loader = BatchLoader::new(
        data.val.clone(),
        LoaderConfig {
            batch_size: 4,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let host = loader.epoch(0).next().unwrap().unwrap();
    let batch = Batch::from_host(host.clone(), &device);
    assert_eq!(batch.images.as_ref().unwrap().dims(), [4, 1, 16, 16]);
    assert_eq!(batch.tabular.as_ref().unwrap().dims(), [4, 5]);
    let labels: Vec<i64> = batch
        .labels
        .to_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    assert_eq!(
        labels,
        host.labels
            .iter()
            .map(|&l| i64::from(l))
            .collect::<Vec<_>>()
    );
    let pixels: Vec<f32> = batch.images.unwrap().to_data().try_to_vec::<f32>().unwrap();
    assert_eq!(pixels, host.images.unwrap());
    let via_source: Vec<_> = BatchSource::batches(&loader, 0, &device)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(via_source.len(), loader.num_batches());
}

#[test]
fn burn_dataloader_reads_the_same_samples() {
    let data = small_synthetic();
    let dataset = BurnSampleDataset::new(data.train.clone(), &Normalization::default()).unwrap();
    let burn_loader = DataLoaderBuilder::new(SampleBatcher::new(&data.train))
        .batch_size(8)
        .num_workers(2)
        .build(dataset);
    let ours = BatchLoader::new(
        data.train.clone(),
        LoaderConfig {
            batch_size: data.train.len(),
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let host = ours.epoch(0).next().unwrap().unwrap();
    let image_len = 16 * 16;
    let mut seen = 0;
    for batch in burn_loader.iter() {
        let batch = batch.unwrap();
        seen += batch.len();
        let images: Vec<f32> = batch.images.unwrap().to_data().try_to_vec::<f32>().unwrap();
        let labels: Vec<i64> = batch
            .labels
            .to_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        // Each image equals one of ours with the same label.
        for (img, label) in images.chunks(image_len).zip(labels) {
            let found = host
                .images
                .as_ref()
                .unwrap()
                .chunks(image_len)
                .zip(&host.labels)
                .any(|(ours, &l)| ours == img && i64::from(l) == label);
            assert!(found);
        }
    }
    assert_eq!(seen, data.train.len());
}

//! Evaluation protocols of unsupervised and self-supervised image methods: clustering metrics
//! ([`cluster`]: Hungarian / majority accuracy, NMI, ARI), probes on frozen features
//! ([`probe`]: linear and kNN) and the k-means baseline ([`kmeans`]). Plain Rust on `f32`
//! slices and label vectors, so that the trainer, `codats ssl kmeans` and reports share them.
//! [`importance`] holds the importance-weighted validation risks (IWV, DEV) of label-free model
//! selection for domain adaptation.

pub mod cluster;
pub mod importance;
pub mod kmeans;
pub mod pca;
pub mod probe;

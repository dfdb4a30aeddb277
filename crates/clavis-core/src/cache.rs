//! In-memory caches that keep the token path free of store reads.
//!
//! Everything here is invalidated as a whole when any state changes: at once on the node that
//! made the change, and on other nodes when they see the audit head move (polled, see
//! `Core::refresh`). A load that raced with an invalidation is not inserted (generation check),
//! so a cache never keeps data older than the last invalidation it saw.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Entries above this count clear the map, bounding memory under random-key floods.
const MAX_ENTRIES: usize = 200_000;

/// One generation-checked map.
#[derive(Debug)]
pub struct GenMap<K, V> {
    map: RwLock<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> Default for GenMap<K, V> {
    fn default() -> Self {
        Self { map: RwLock::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> GenMap<K, V> {
    /// A cached value.
    pub fn get(&self, key: &K) -> Option<V> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Inserts a value loaded while the generation was `loaded_at`, unless it moved since.
    pub fn insert(&self, generation: &Generation, loaded_at: u64, key: K, value: V) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if generation.current() != loaded_at {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, value);
    }

    /// Removes an entry.
    pub fn remove(&self, key: &K) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Empties the map.
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The invalidation counter shared by all maps.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    /// The current generation.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves to the next generation.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

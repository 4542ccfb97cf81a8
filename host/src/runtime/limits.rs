//! Per-instance memory cap: growth past it is refused and remembered, so a trap that follows is a `PluginMemory` fault.

use wasmtime::ResourceLimiter;

/// Most table elements an instance may grow to; far above what a Rust plugin uses.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// A memory growth the cap refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRefusal {
    /// Total linear memory the plugin asked for, in bytes.
    pub requested_bytes: usize,
    pub max_bytes: usize,
}

/// Caps the sum of an instance's linear memories.
///
/// Growth past the cap is refused (`memory.grow` returns -1) rather than trapped
/// at once, so a guest that handles allocation failure can go on; most guests
/// then abort, and the recorded refusal classifies that trap as `PluginMemory`.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    used_bytes: usize,
    refused: Option<MemoryRefusal>,
}

impl MemoryLimiter {
    pub fn new(max_bytes: u64) -> Self {
        MemoryLimiter { max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX), used_bytes: 0, refused: None }
    }

    /// The refusal since the last [`MemoryLimiter::clear_refusal`], if any.
    pub fn refusal(&self) -> Option<MemoryRefusal> {
        self.refused
    }

    pub fn clear_refusal(&mut self) {
        self.refused = None;
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.used_bytes - current.min(self.used_bytes) + desired;
        if total > self.max_bytes {
            self.refused = Some(MemoryRefusal { requested_bytes: total, max_bytes: self.max_bytes });
            return Ok(false);
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_growth_past_the_cap_and_remembers_it() {
        let mut l = MemoryLimiter::new(1000);
        assert!(l.memory_growing(0, 600, None).unwrap());
        assert!(l.memory_growing(600, 1000, None).unwrap());
        assert!(!l.memory_growing(1000, 1001, None).unwrap());
        assert_eq!(l.refusal(), Some(MemoryRefusal { requested_bytes: 1001, max_bytes: 1000 }));
        assert_eq!(l.used_bytes(), 1000);
        l.clear_refusal();
        assert_eq!(l.refusal(), None);
    }
}

// A caching layer over PyTorch's CPU allocator for the large temporaries of inference.
//
// Every large CPU tensor normally gets freshly mapped memory that the kernel zero-fills page by
// page on first touch; at 800x1333 one Mask2Former forward maps ~1.5 GB that way (~0.3 ms per
// MB). Inside a caching scope (entered per thread by mask2former.utils.cpu_caching), blocks of
// at least kMinBytes are kept when freed and handed out again for requests of about the same
// size, so their pages stay mapped. Outside a scope, and for small blocks, every request goes
// to the allocator that was installed before (blocks taken from the cache are still returned
// to it when freed). The cache holds at most `limit` bytes of free blocks, releases blocks that
// no request took during the last kKeepScopes scopes (image sizes change), and `empty_cache`
// returns them all to the system.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

namespace mask2former::cpu_memory {
namespace {

constexpr size_t kMinBytes = size_t(1) << 20;
constexpr size_t kGranule = size_t(1) << 16;
constexpr int64_t kKeepScopes = 4;

thread_local int64_t scope_depth = 0;

struct FreeBlock {
  void* data;
  int64_t scope;  // the outermost scope that freed it
};

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, FreeBlock> free_blocks;  // by size
  int64_t scopes = 0;                            // outermost scopes entered so far
  std::unordered_map<void*, size_t> live;        // blocks handed out by the cache layer
  size_t free_bytes = 0;
  size_t limit = size_t(4) << 30;
  c10::Allocator* base = nullptr;
};

// Never destroyed: tensors may be freed during interpreter shutdown.
Cache& cache() {
  static Cache* instance = new Cache();
  return *instance;
}

void release(void* data) {
  if (data == nullptr) {
    return;
  }
  auto& c = cache();
  size_t size = 0;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    const auto it = c.live.find(data);
    if (it == c.live.end()) {
      // Allocated by the base allocator (raw_allocate callers free through our raw_deleter).
      c.base->raw_deleter()(data);
      return;
    }
    size = it->second;
    c.live.erase(it);
    if (c.free_bytes + size <= c.limit) {
      c.free_blocks.emplace(size, FreeBlock{data, c.scopes});
      c.free_bytes += size;
      return;
    }
  }
  c10::free_cpu(data);
}

class CachingCPUAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    auto& c = cache();
    if (scope_depth == 0 || nbytes < kMinBytes) {
      return c.base->allocate(nbytes);
    }
    const size_t size = (nbytes + kGranule - 1) / kGranule * kGranule;
    void* data = nullptr;
    size_t block_size = size;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      // The smallest free block that fits, unless it wastes more than an eighth.
      const auto it = c.free_blocks.lower_bound(size);
      if (it != c.free_blocks.end() && it->first <= size + size / 8) {
        data = it->second.data;
        block_size = it->first;
        c.free_bytes -= block_size;
        c.free_blocks.erase(it);
      }
    }
    if (data == nullptr) {
      data = c10::alloc_cpu(size);
    }
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.live.emplace(data, block_size);
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override {
    return &release;
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingCPUAllocator* installed = nullptr;

// Installs the layer over the current CPU allocator (once); returns whether it is active.
bool install() {
  auto& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (installed == nullptr) {
    c.base = c10::GetCPUAllocator();
    installed = new CachingCPUAllocator();
    c10::SetCPUAllocator(installed, /*priority=*/1);
  }
  return c10::GetCPUAllocator() == installed;
}

// Frees the blocks of `blocks` and returns their bytes (called without the lock held).
int64_t free_all(const std::multimap<size_t, FreeBlock>& blocks) {
  int64_t released = 0;
  for (const auto& [size, block] : blocks) {
    c10::free_cpu(block.data);
    released += static_cast<int64_t>(size);
  }
  return released;
}

int64_t enter() {
  if (scope_depth++ > 0) {
    return scope_depth;
  }
  auto& c = cache();
  std::multimap<size_t, FreeBlock> stale;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    ++c.scopes;
    for (auto it = c.free_blocks.begin(); it != c.free_blocks.end();) {
      if (c.scopes - it->second.scope > kKeepScopes) {
        c.free_bytes -= it->first;
        stale.insert(*it);
        it = c.free_blocks.erase(it);
      } else {
        ++it;
      }
    }
  }
  free_all(stale);
  return scope_depth;
}

int64_t leave() {
  if (scope_depth > 0) {
    --scope_depth;
  }
  return scope_depth;
}

int64_t empty_cache() {
  auto& c = cache();
  std::multimap<size_t, FreeBlock> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    blocks.swap(c.free_blocks);
    c.free_bytes = 0;
  }
  return free_all(blocks);
}

int64_t cached_bytes() {
  auto& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return static_cast<int64_t>(c.free_bytes);
}

int64_t set_limit(int64_t limit) {
  {
    auto& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.limit = static_cast<size_t>(limit < 0 ? 0 : limit);
  }
  if (cached_bytes() > limit) {
    empty_cache();
  }
  return limit;
}

}  // namespace

TORCH_LIBRARY(mask2former_memory, m) {
  m.def("install() -> bool", &install);
  m.def("enter() -> int", &enter);
  m.def("leave() -> int", &leave);
  m.def("empty_cache() -> int", &empty_cache);
  m.def("cached_bytes() -> int", &cached_bytes);
  m.def("set_limit(int limit) -> int", &set_limit);
}

}  // namespace mask2former::cpu_memory

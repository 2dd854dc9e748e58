// The q-quantile of a bench's samples (0 <= q <= 1): the element at rank q*n, found with
// nth_element (the vector is reordered). 0 for no samples. Header-only, for bench/*.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace dmvpn::bench {

template <typename T>
T quantile(std::vector<T>& v, double q) {
    if (v.empty()) {
        return T{};
    }
    size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace dmvpn::bench

// Package bytesize reads byte counts from config values: integers, or
// strings with a unit such as "64MiB" or "1.5GB".
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units maps a unit suffix (lower case) to its multiplier.
var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1000 * 1000 * 1000 * 1000, "tib": 1 << 40,
}

// Parse reads a byte count: an integer (any Go integer type, or a whole
// float64 as JSON and structpb deliver numbers) or a string such as
// "64MiB", "1.5GB", "1048576".
func Parse(v any) (int64, error) {
	const maxSize = 1 << 50 // 1 PiB: anything larger is a typo
	var n float64
	switch x := v.(type) {
	case int:
		n = float64(x)
	case int8:
		n = float64(x)
	case int16:
		n = float64(x)
	case int32:
		n = float64(x)
	case int64:
		n = float64(x)
	case uint:
		n = float64(x)
	case uint8:
		n = float64(x)
	case uint16:
		n = float64(x)
	case uint32:
		n = float64(x)
	case uint64:
		n = float64(x)
	case float32:
		n = float64(x)
	case float64:
		n = x
	case string:
		s := strings.TrimSpace(x)
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
		mult, ok := units[unit]
		if num == "" || !ok {
			return 0, fmt.Errorf("must be a size such as 67108864, \"64MiB\" or \"1GB\", got %q", x)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("must be a size such as 67108864, \"64MiB\" or \"1GB\", got %q", x)
		}
		n = f * float64(mult)
	default:
		return 0, fmt.Errorf("must be a size in bytes or a string such as \"64MiB\", got %s", fmt.Sprintf("%T", v))
	}
	if math.IsNaN(n) || n < 0 {
		return 0, fmt.Errorf("must not be negative, got %v", v)
	}
	if n > maxSize {
		return 0, fmt.Errorf("%v is too large (more than 1PiB)", v)
	}
	if n != math.Trunc(n) {
		return 0, fmt.Errorf("must be a whole number of bytes, got %v", v)
	}
	return int64(n), nil
}

// Format writes n the way Parse reads it back: in the largest binary unit
// that divides it ("64MiB", "1536KiB"), or in bytes.
func Format(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

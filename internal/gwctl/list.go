package gwctl

import (
	"context"
	"errors"
)

// pageSize is what list commands ask for per page (the API allows 1000).
const pageSize = 500

// listAll follows next_page_token until the last page.
func listAll[T any](ctx context.Context, fetch func(ctx context.Context, pageToken string) ([]T, string, error)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	token := ""
	for {
		items, next, err := fetch(ctx, token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, errors.New("the server repeated a page token; the listing is incomplete")
		}
		seen[next] = true
		token = next
	}
}

package api

import (
	"embed"
	"io/fs"
	"net/http"
)

// The web view: static files embedded in every flow binary, with no build
// step and nothing fetched from elsewhere. The page polls /api/state.
//
//go:embed web
var webFiles embed.FS

func webHandler() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		files.ServeHTTP(w, r)
	})
}

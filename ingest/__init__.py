"""mmrag.ingest: turning files into typed chunks with exact locators."""

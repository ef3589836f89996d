"""Development servers, not the product: the demo, a local Label Studio, llama.cpp's server."""

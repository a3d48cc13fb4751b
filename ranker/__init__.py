"""Label prep, stratified union, the shared feature function, LightGBM lambdarank training and evaluation."""

"""voxray.attribution.lrp"""

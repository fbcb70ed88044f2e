"""voxray.attribution"""

"""voxray.features"""

"""voxray.mask"""

"""voxray.models"""

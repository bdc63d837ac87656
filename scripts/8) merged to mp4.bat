@echo off
rem 8) merged to mp4: encode data_dst/merged as workspace/result.mp4 (frame rate and audio of
rem data_dst.*; asks the bitrate) and data_dst/merged_mask as a lossless result_mask.mp4.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed video-from-sequence ^
    --input-dir "%WORKSPACE%\data_dst\merged" ^
    --output-file "%WORKSPACE%\result.mp4" ^
    --reference-file "%WORKSPACE%\data_dst.*" ^
    --include-audio ^
    %*
if not errorlevel 1 "%VENV_PY%" "%REPO_ROOT%\main.py" videoed video-from-sequence ^
    --input-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --output-file "%WORKSPACE%\result_mask.mp4" ^
    --reference-file "%WORKSPACE%\data_dst.*" ^
    --lossless ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%

@echo off
rem 8) merged to mov lossless: encode data_dst/merged as a lossless workspace/result.mov (frame rate
rem and audio of data_dst.*) and data_dst/merged_mask as a lossless result_mask.mov.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed video-from-sequence ^
    --input-dir "%WORKSPACE%\data_dst\merged" ^
    --output-file "%WORKSPACE%\result.mov" ^
    --reference-file "%WORKSPACE%\data_dst.*" ^
    --include-audio ^
    --lossless ^
    %*
if not errorlevel 1 "%VENV_PY%" "%REPO_ROOT%\main.py" videoed video-from-sequence ^
    --input-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --output-file "%WORKSPACE%\result_mask.mov" ^
    --reference-file "%WORKSPACE%\data_dst.*" ^
    --lossless ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
